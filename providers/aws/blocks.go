package aws

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
)

// The EBS direct APIs' limits: ListSnapshotBlocks pages hold at most 10000
// blocks, and a block is 512 KiB. A larger block size is refused rather
// than trusted, so that a block buffer stays bounded.
const (
	listPageSize  = 10000
	maxBlockSize  = 512 << 10
	gibibyte      = int64(1) << 30
	maxVolumeSize = 64 << 10 // GiB, the largest EBS volume (io2 Block Express)
)

var (
	// errChecksum: a block's bytes do not match its x-amz-Checksum, or
	// the header is unusable. Fetching it again is the cure.
	errChecksum = errors.New("block checksum mismatch")
	// errShortBlock: a block's body is not as long as it must be.
	errShortBlock = errors.New("block body has the wrong length")
)

// snapshotBlocks is what ListSnapshotBlocks says of a snapshot: the
// blocks written (listed blocks may hold zeros; unlisted ones are holes),
// each with the token that fetches it.
type snapshotBlocks struct {
	snapshotID string
	blockSize  int32
	// volumeSize is the volume's size in bytes (VolumeSize GiB).
	volumeSize int64
	// expiry is when the block tokens stop working (seven days out).
	expiry time.Time
	// blocks are in ascending index order, each index once.
	blocks []snapshotBlock
}

type snapshotBlock struct {
	index int32
	token string
}

// listSnapshotBlocks lists every block of the snapshot, all pages, and
// refuses an answer that contradicts itself (see walkSnapshotBlocks).
func (p *Provider) listSnapshotBlocks(ctx context.Context, snapshotID string) (*snapshotBlocks, error) {
	out := &snapshotBlocks{snapshotID: snapshotID}
	err := p.walkSnapshotBlocks(ctx, snapshotID, func(pg blockPage) error {
		out.blockSize, out.volumeSize, out.expiry = pg.blockSize, pg.volumeSize, pg.expiry
		out.blocks = append(out.blocks, pg.blocks...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// blockPage is one checked page of ListSnapshotBlocks.
type blockPage struct {
	blockSize  int32
	volumeSize int64 // bytes
	expiry     time.Time
	blocks     []snapshotBlock // ascending, continuing the previous page
}

// walkSnapshotBlocks pages through ListSnapshotBlocks, handing each page
// to fn as it arrives (a 16 TiB volume lists 32 million blocks: they are
// not all held at once), and refuses an answer that contradicts itself:
// block sizes that change between pages or exceed 512 KiB, indexes out of
// order, repeated, or beyond the volume's size, missing tokens. An error
// fn returns ends the walk and is returned as is.
func (p *Provider) walkSnapshotBlocks(ctx context.Context, snapshotID string, fn func(blockPage) error) error {
	_, c, err := p.clients()
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("aws %s: list blocks of %s: %s", p.name, snapshotID, fmt.Sprintf(format, args...))
	}
	pages := ebs.NewListSnapshotBlocksPaginator(c, &ebs.ListSnapshotBlocksInput{
		SnapshotId: aws.String(snapshotID), MaxResults: aws.Int32(listPageSize),
	})
	var (
		blockSize  int32
		volumeSize int64
		last       int32 = -1
	)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return classify(p.apiError("list blocks of "+snapshotID, err))
		}
		size, vol := aws.ToInt32(page.BlockSize), aws.ToInt64(page.VolumeSize)
		switch {
		case size <= 0 || size > maxBlockSize || maxBlockSize%size != 0:
			return bad("block size %d", size)
		case vol <= 0 || vol > maxVolumeSize:
			return bad("volume size %d GiB", vol)
		case blockSize != 0 && (size != blockSize || vol*gibibyte != volumeSize):
			return bad("pages disagree on block size (%d, %d) or volume size", blockSize, size)
		}
		blockSize, volumeSize = size, vol*gibibyte
		nBlocks := volumeSize / int64(size)
		pg := blockPage{blockSize: size, volumeSize: volumeSize, expiry: aws.ToTime(page.ExpiryTime)}
		for _, b := range page.Blocks {
			idx, tok := aws.ToInt32(b.BlockIndex), aws.ToString(b.BlockToken)
			switch {
			case b.BlockIndex == nil || idx < 0 || int64(idx) >= nBlocks:
				return bad("block index %d outside the volume's %d blocks", idx, nBlocks)
			case idx <= last:
				return bad("block index %d after %d: not ascending", idx, last)
			case tok == "":
				return bad("block %d has no token", idx)
			}
			last = idx
			pg.blocks = append(pg.blocks, snapshotBlock{index: idx, token: tok})
		}
		if err := fn(pg); err != nil {
			return err
		}
	}
	if blockSize == 0 {
		return bad("no page answered")
	}
	return nil
}

// fetchBlock reads one block into buf (which must hold blockSize bytes)
// and returns its bytes and the SHA-256 the service sent with it
// (x-amz-Checksum), unverified: verifyBlock checks them. Its errors are
// classified: providers.IsPermanent is true when asking again cannot help.
// optFns change the call's client options (the export's block source
// makes one attempt per call and leaves the retrying to the pipeline).
func (p *Provider) fetchBlock(ctx context.Context, snapshotID string, blockSize int32, b snapshotBlock, buf []byte, optFns ...func(*ebs.Options)) ([]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	_, c, err := p.clients()
	if err != nil {
		return nil, sum, err
	}
	if len(buf) < int(blockSize) {
		return nil, sum, fmt.Errorf("aws %s: block buffer of %d bytes for %d-byte blocks", p.name, len(buf), blockSize)
	}
	ctx, cancel := context.WithTimeout(ctx, p.tune.blockTimeout)
	defer cancel()
	what := fmt.Sprintf("block %d of %s", b.index, snapshotID)
	res, err := c.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{
		SnapshotId: aws.String(snapshotID), BlockIndex: aws.Int32(b.index), BlockToken: aws.String(b.token),
	}, optFns...)
	if err != nil {
		return nil, sum, classify(p.apiError("get "+what, err))
	}
	defer res.BlockData.Close()
	if res.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 {
		return nil, sum, fmt.Errorf("aws %s: %s: checksum algorithm %q, want SHA256: %w", p.name, what, res.ChecksumAlgorithm, errChecksum)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(res.Checksum))
	if err != nil || len(raw) != sha256.Size {
		return nil, sum, fmt.Errorf("aws %s: %s: x-amz-Checksum is not a base64 SHA-256: %w", p.name, what, errChecksum)
	}
	copy(sum[:], raw)
	if n := aws.ToInt32(res.DataLength); n != blockSize {
		return nil, sum, fmt.Errorf("aws %s: %s: x-amz-Data-Length %d, want %d: %w", p.name, what, n, blockSize, errShortBlock)
	}
	data := buf[:blockSize]
	if _, err := io.ReadFull(res.BlockData, data); err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			return nil, sum, fmt.Errorf("aws %s: read %s: %w", p.name, what, context.Cause(ctx))
		}
		return nil, sum, fmt.Errorf("aws %s: read %s: %w (%w)", p.name, what, errShortBlock, err)
	}
	var extra [1]byte
	if n, _ := res.BlockData.Read(extra[:]); n != 0 {
		return nil, sum, fmt.Errorf("aws %s: %s: body longer than x-amz-Data-Length: %w", p.name, what, errShortBlock)
	}
	return data, sum, nil
}

// verifyBlock checks data against the checksum sent with it.
func verifyBlock(data []byte, sum [sha256.Size]byte) error {
	if got := sha256.Sum256(data); !bytes.Equal(got[:], sum[:]) {
		return errChecksum
	}
	return nil
}
