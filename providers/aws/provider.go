package aws

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// Provider is one AWS account in one region.
type Provider struct {
	name string
	// cfg is a pointer so that printing a Provider with %+v shows an
	// address, not the secret in it (fmt cannot call Secret.String on an
	// unexported field).
	cfg  *Config
	log  *slog.Logger
	tune tuning

	mu     sync.RWMutex
	region string
	http   *http.Client
	ec2    *ec2.Client
	ebs    *ebs.Client
	s3     *s3.Client
	// presign signs the GET URLs of export objects.
	presign *s3.PresignClient

	types instanceTypeCache
}

// tuning holds the timings and limits of the platform calls; tests shorten
// them.
type tuning struct {
	// retry spaces the SDK's attempts of one call; maxAttempts bounds them.
	retry       backoff.Policy
	maxAttempts int
	// maxConns bounds the connections to one endpoint: the block workers
	// of the exports running at once, plus discovery.
	maxConns int
	// snapshotPoll is the waiter's first and longest poll interval;
	// snapshotTimeout bounds the wait for a snapshot set to complete (the
	// first snapshot of a large volume takes hours).
	snapshotPollMin, snapshotPollMax time.Duration
	snapshotTimeout                  time.Duration
	// cleanupTimeout bounds the deletion of a snapshot set, which runs on
	// its own context because the export's may be cancelled.
	cleanupTimeout time.Duration
	// blockTimeout bounds one block fetch, retries included.
	blockTimeout time.Duration
	// pageSize is the page size of DescribeInstances and DescribeVolumes
	// (EC2 allows 5–1000 and 5–500).
	pageSize int32
	// exportPoll spaces the DescribeExportTasks polls of an export task;
	// exportTimeout bounds the wait (VM Export takes hours for large
	// volumes).
	exportPoll    backoff.Policy
	exportTimeout time.Duration
	// presignExpiry is how long a pre-signed GET of an export object
	// stays valid: long enough for the whole download and its retries.
	presignExpiry time.Duration
}

// connReadBuffer is each connection's read buffering (transfer's default is
// 256 KiB, for a few long streams). A block body is read straight into the
// block engine's buffer, so a larger one saves few system calls, and an
// export keeps up to 64 connections open: 64 KiB each keeps them at 8 MiB
// in all (transfer.ClientOptions.ReadBufferSize: the socket buffer and the
// HTTP one above it) instead of 20, memory the garbage collector's pacing
// then counts twice.
const connReadBuffer = 64 << 10

func defaultTuning() tuning {
	return tuning{
		// Full jitter from 200 ms doubling to 20 s: 64 workers throttled
		// together spread out instead of coming back in step.
		retry:           backoff.Policy{Base: 200 * time.Millisecond, Max: 20 * time.Second, Jitter: 1},
		maxAttempts:     10,
		maxConns:        128,
		snapshotPollMin: 5 * time.Second,
		snapshotPollMax: time.Minute,
		snapshotTimeout: 12 * time.Hour,
		cleanupTimeout:  2 * time.Minute,
		blockTimeout:    2 * time.Minute,
		pageSize:        500,
		exportPoll:      backoff.Policy{Base: 15 * time.Second, Max: 2 * time.Minute, Jitter: 0.2},
		exportTimeout:   48 * time.Hour,
		presignExpiry:   24 * time.Hour,
	}
}

// retryer is the SDK's standard retryer tuned for many concurrent block
// fetches. The client-side retry quota is off: its 500 tokens at 5 per
// retry are spent within one throttling burst of 64 workers, after which
// every call fails at once instead of slowing down; the jittered backoff
// (and the download engine's concurrency control) do the slowing down.
// ConcurrentLimitExceededException, which the EBS direct APIs answer when
// too many requests run on one snapshot, is retried like throttling.
func (t tuning) retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = t.maxAttempts
		o.MaxBackoff = t.retry.Max
		o.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
			return t.retry.Delay(attempt), nil
		})
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableErrorCode{Codes: map[string]struct{}{
			"ConcurrentLimitExceededException": {},
		}})
	})
}

// New is the factory of type aws (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, deps.Logger)
}

// Registration is what type aws contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: providers.DemoWithoutOptions(StartDemo)}
}

// NewProvider creates an unconnected provider for one account and region.
func NewProvider(name string, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("aws %s: %w", name, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Provider{name: name, cfg: &cfg, log: log, tune: defaultTuning()}, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeAWS }

// Connect implements providers.Provider: it builds the EC2 and EBS clients
// from the configured keys or the SDK's default chain and makes one
// authenticated call, so that bad credentials surface now.
func (p *Provider) Connect(ctx context.Context) error {
	load := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(p.tune.retryer),
		awsconfig.WithLogger(sdkLogger(p.log)),
	}
	if p.cfg.Region != "" {
		load = append(load, awsconfig.WithRegion(p.cfg.Region))
	}
	if p.cfg.Profile != "" {
		load = append(load, awsconfig.WithSharedConfigProfile(p.cfg.Profile))
	}
	static := p.cfg.AccessKeyID != ""
	if static {
		load = append(load, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			p.cfg.AccessKeyID, p.cfg.SecretAccessKey.Reveal(), p.cfg.SessionToken.Reveal())))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return providers.Permanent(fmt.Errorf("aws %s: load the SDK configuration: %w", p.name, err))
	}
	hc, err := transfer.NewHTTPClient(transfer.ClientOptions{
		RootCAs:               caBundle(awsCfg),
		MaxConnsPerHost:       p.tune.maxConns,
		ResponseHeaderTimeout: 30 * time.Second, // a 512 KiB block or a Describe page, not a disk
		ReadBufferSize:        connReadBuffer,
	})
	if err != nil {
		return err
	}
	awsCfg.HTTPClient = hc
	if awsCfg.Region == "" {
		return providers.Permanent(fmt.Errorf("aws %s: %w: no region: set region, or one in the profile or AWS_REGION", p.name, providers.ErrInvalidArgument))
	}
	if !static {
		// The chain's failure says which sources it tried; a call would
		// only say "failed to retrieve credentials".
		if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
			return fmt.Errorf("aws %s: no usable credentials from the default chain: %w: %w", p.name, providers.ErrAuth, err)
		}
	}
	ec2c := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if p.cfg.Endpoints.EC2 != "" {
			o.BaseEndpoint = aws.String(p.cfg.Endpoints.EC2)
		}
	})
	ebsc := ebs.NewFromConfig(awsCfg, func(o *ebs.Options) {
		if p.cfg.Endpoints.EBS != "" {
			o.BaseEndpoint = aws.String(p.cfg.Endpoints.EBS)
		}
	})
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if p.cfg.Endpoints.S3 != "" {
			o.BaseEndpoint = aws.String(p.cfg.Endpoints.S3)
		}
		// S3-compatible stores and test servers are addressed
		// ENDPOINT/BUCKET; AWS's own endpoints BUCKET.ENDPOINT.
		o.UsePathStyle = p.cfg.Endpoints.S3 != ""
	})
	p.mu.Lock()
	p.region, p.http, p.ec2, p.ebs, p.s3, p.presign = awsCfg.Region, hc, ec2c, ebsc, s3c, s3.NewPresignClient(s3c)
	p.mu.Unlock()
	return p.ValidateCredentials(ctx)
}

// Disconnect drops the clients and their idle connections.
func (p *Provider) Disconnect() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.http != nil {
		p.http.CloseIdleConnections()
	}
	p.http, p.ec2, p.ebs, p.s3, p.presign = nil, nil, nil, nil, nil
	return nil
}

// clients returns the connected EC2 and EBS clients.
func (p *Provider) clients() (*ec2.Client, *ebs.Client, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ec2 == nil {
		return nil, nil, fmt.Errorf("aws %s: not connected", p.name)
	}
	return p.ec2, p.ebs, nil
}

// ValidateCredentials makes the cheapest authenticated EC2 call there is:
// one page of at most five instances.
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	c, _, err := p.clients()
	if err != nil {
		return err
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}); err != nil {
		return p.apiError("check credentials", err)
	}
	return nil
}

// caBundle returns the certificate pool of the CA bundle the SDK's
// configuration names (AWS_CA_BUNDLE, a profile's ca_bundle), nil when none:
// the SDK applies it to its own HTTP client only, and the clients here use
// the project's.
func caBundle(cfg aws.Config) *x509.CertPool {
	bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return nil
	}
	if t := bc.GetTransport(); t != nil && t.TLSClientConfig != nil {
		return t.TLSClientConfig.RootCAs
	}
	return nil
}

// sdkLogger sends the SDK's own log lines (warnings such as a response
// without a checksum; request logging is never enabled, so no header or
// body reaches it) to log.
func sdkLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		level := slog.LevelDebug
		if c == logging.Warn {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
	})
}
