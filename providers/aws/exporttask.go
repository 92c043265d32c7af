package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// The export methods of type aws (providers.MethodLister).
const (
	// MethodEBSDirect reads a crash-consistent snapshot set through the
	// EBS direct APIs: any instance, every volume. The default.
	MethodEBSDirect = "ebs-direct"
	// MethodExportTask has VM Export (CreateInstanceExportTask) write the
	// instance's image to S3 and downloads it: only instances VM Export
	// accepts (one unencrypted volume of at most 1 TiB, no Windows or
	// Marketplace software, one network interface).
	MethodExportTask = "export-task"
)

// ExportMethods implements providers.MethodLister.
func (p *Provider) ExportMethods() []string { return []string{MethodEBSDirect, MethodExportTask} }

// maxExportVolumeGiB is the largest volume VM Export exports ("VMs with
// volumes larger than 1 TiB are not supported").
const maxExportVolumeGiB = 1024

// Billing codes (UsageOperation, "AMI billing information fields") of
// instances that carry Windows or SQL Server licensed through AWS, which
// VM Export does not export.
var licensedUsageOperations = map[string]string{
	"RunInstances:0002": "Windows", "RunInstances:0800": "Windows (BYOL)",
	"RunInstances:0006": "Windows with SQL Server Standard", "RunInstances:0102": "Windows with SQL Server Enterprise",
	"RunInstances:0202": "Windows with SQL Server Web", "RunInstances:0004": "Linux with SQL Server Standard",
	"RunInstances:0100": "Linux with SQL Server Enterprise", "RunInstances:0200": "Linux with SQL Server Web",
}

// exportRefusal is the up-front refusal of an instance VM Export does not
// export: permanent, naming every reason, and pointing at the method that
// exports any instance.
func (p *Provider) exportRefusal(vm *providers.VMInfo, reasons []string) error {
	return providers.Permanent(fmt.Errorf("aws %s: %w: VM Export cannot export %s (%s): %s. Use --method %s (the default), which reads any instance's volumes through the EBS direct APIs",
		p.name, providers.ErrUnsupported, vm.ID, vm.Name, strings.Join(reasons, "; "), MethodEBSDirect))
}

// checkExportable refuses, before anything is created, an instance that VM
// Export would refuse (VM Import/Export User Guide, "Considerations for
// instance export"), from what DescribeInstances, DescribeVolumes and
// DescribeImages say of it: AWS-provided third-party software (Windows,
// SQL Server — by platform, platform details or billing code — or an
// instance or AMI with a Marketplace product code), more or fewer than
// one EBS volume, an encrypted volume or one larger than 1 TiB, more than
// one network interface. An instance in transition (pending, stopping) is
// refused for now, not for good: VM Export takes running and stopped
// instances.
func (p *Provider) checkExportable(ctx context.Context, c *ec2.Client, vm *providers.VMInfo, log *slog.Logger) error {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{vm.ID}})
	if err != nil {
		return p.apiError("describe instance "+vm.ID, err)
	}
	var inst *ec2types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == vm.ID {
				inst = &r.Instances[i]
			}
		}
	}
	if inst == nil {
		return fmt.Errorf("aws %s: instance %s: %w", p.name, vm.ID, providers.ErrNotFound)
	}
	var reasons []string
	licensed := func(what, platform, details, usage string) {
		switch {
		case platform == string(ec2types.PlatformValuesWindows) || strings.Contains(details, "Windows"):
			reasons = append(reasons, what+" runs Windows, which AWS licenses (third-party software VM Export does not export)")
		case strings.Contains(details, "SQL Server"):
			reasons = append(reasons, what+" carries SQL Server licensed by AWS (third-party software VM Export does not export)")
		case licensedUsageOperations[usage] != "":
			reasons = append(reasons, fmt.Sprintf("%s is billed as %s (%s), software VM Export does not export", what, licensedUsageOperations[usage], usage))
		}
	}
	marketplace := func(what string, codes []ec2types.ProductCode) {
		for _, pc := range codes {
			if pc.ProductCodeType == ec2types.ProductCodeValuesMarketplace {
				reasons = append(reasons, fmt.Sprintf("%s has the AWS Marketplace product code %s (Marketplace software is not exported)", what, aws.ToString(pc.ProductCodeId)))
				return
			}
		}
	}
	licensed("the instance", string(inst.Platform), aws.ToString(inst.PlatformDetails), aws.ToString(inst.UsageOperation))
	marketplace("the instance", inst.ProductCodes)
	if id := aws.ToString(inst.ImageId); id != "" {
		images, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		switch {
		case apiCode(err) == "InvalidAMIID.NotFound" || apiCode(err) == "InvalidAMIID.Unavailable":
			// Deregistered: what the instance itself says is all there is.
			log.Debug("the instance's AMI is gone; judged on the instance alone", "image", id)
		case err != nil:
			return p.apiError("describe image "+id, err)
		default:
			for _, im := range images.Images {
				licensed("its AMI "+id, string(im.Platform), aws.ToString(im.PlatformDetails), aws.ToString(im.UsageOperation))
				marketplace("its AMI "+id, im.ProductCodes)
			}
		}
	}
	var volumeIDs []string
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil {
			volumeIDs = append(volumeIDs, aws.ToString(m.Ebs.VolumeId))
		}
	}
	if len(volumeIDs) != 1 {
		reasons = append(reasons, fmt.Sprintf("it has %d EBS volumes (%s); VM Export exports an instance with exactly one", len(volumeIDs), strings.Join(volumeIDs, ", ")))
	}
	if n := len(inst.NetworkInterfaces); n > 1 {
		reasons = append(reasons, fmt.Sprintf("it has %d network interfaces; VM Export exports an instance with one", n))
	}
	if len(volumeIDs) > 0 {
		vols, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: volumeIDs})
		if err != nil {
			return p.apiError("describe volumes of "+vm.ID, err)
		}
		for _, v := range vols.Volumes {
			id := aws.ToString(v.VolumeId)
			if aws.ToBool(v.Encrypted) {
				reasons = append(reasons, fmt.Sprintf("volume %s is encrypted; VM Export does not export encrypted volumes", id))
			}
			if size := aws.ToInt32(v.Size); size > maxExportVolumeGiB {
				reasons = append(reasons, fmt.Sprintf("volume %s is %d GiB; VM Export exports volumes of at most 1 TiB", id, size))
			}
		}
	}
	if len(reasons) > 0 {
		return p.exportRefusal(vm, reasons)
	}
	if st := inst.State; st != nil && st.Name != ec2types.InstanceStateNameRunning && st.Name != ec2types.InstanceStateNameStopped {
		return fmt.Errorf("aws %s: instance %s is %s; VM Export exports running or stopped instances: retry once it is", p.name, vm.ID, st.Name)
	}
	return nil
}

// exportTask is the job's export task as the provider follows it.
type exportTask struct {
	id, jobID, instanceID string
	bucket, key           string
	state                 ec2types.ExportTaskState
	status                string
}

func taskOf(t ec2types.ExportTask) *exportTask {
	out := &exportTask{id: aws.ToString(t.ExportTaskId), state: t.State, status: aws.ToString(t.StatusMessage), jobID: tag(t.Tags, TagJob)}
	if d := t.InstanceExportDetails; d != nil {
		out.instanceID = aws.ToString(d.InstanceId)
	}
	if s := t.ExportToS3Task; s != nil {
		out.bucket, out.key = aws.ToString(s.S3Bucket), aws.ToString(s.S3Key)
	}
	return out
}

// s3Clients returns the connected EC2 and S3 clients.
func (p *Provider) s3Clients() (*ec2.Client, *s3.Client, *s3.PresignClient, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ec2 == nil || p.s3 == nil {
		return nil, nil, nil, fmt.Errorf("aws %s: not connected", p.name)
	}
	return p.ec2, p.s3, p.presign, nil
}

// prepareExportTask is PrepareExport for MethodExportTask: the instance is
// checked against what VM Export refuses, the job's export task is found
// (an earlier attempt's, completed or still running) or created, tagged
// with the job at creation, and waited for; its object is described,
// located (inside an OVA: the disk image's byte range) and handed to the
// pipeline as one ranged, verified HTTP source. Cleanup cancels what is
// still running and deletes the object when the configuration asks.
func (p *Provider) prepareExportTask(ctx context.Context, identifier string, opts providers.ExportOptions, jobID string, log *slog.Logger) (_ *providers.Export, err error) {
	et := &p.cfg.ExportTask
	if et.Bucket == "" {
		return nil, providers.Permanent(fmt.Errorf("aws %s: %w: method %s needs export_task.bucket in the provider's configuration (the S3 bucket VM Export writes to); set it, or use --method %s",
			p.name, providers.ErrInvalidArgument, MethodExportTask, MethodEBSDirect))
	}
	c, _, _, err := p.s3Clients()
	if err != nil {
		return nil, err
	}
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	vm, err := p.GetVM(ctx, identifier)
	if err != nil {
		return nil, err
	}
	log = log.With("instance", vm.ID)
	if err := p.checkExportable(ctx, c, vm, log); err != nil {
		return nil, err
	}
	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	task, err := p.exportTaskFor(ctx, c, vm, jobID, opts, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.endExportTask(jobID, task, log)
		}
	}()
	obj, err := p.describeExportObject(ctx, task)
	if err != nil {
		return nil, err
	}
	src, err := p.exportDiskSource(ctx, vm, obj, log)
	if err != nil {
		return nil, err
	}
	out := &providers.Export{VM: cloneVM(vm), Disks: []providers.DiskSource{src}}
	out.Cleanup = func() { p.endExportTask(jobID, task, log) }
	return out, nil
}

// exportTaskFor returns the job's completed export task of vm: an earlier
// attempt's that wrote the configured kind of object and whose object is
// still there (so a retried job, or one resumed after a kill -9, does not
// export the instance again), one still running (waited for), or a new
// one.
func (p *Provider) exportTaskFor(ctx context.Context, c *ec2.Client, vm *providers.VMInfo, jobID string, opts providers.ExportOptions, log *slog.Logger) (*exportTask, error) {
	found, err := p.findExportTasks(ctx, c, ec2types.Filter{Name: aws.String("tag:" + TagJob), Values: []string{ec2Literal(jobID)}})
	if err != nil {
		return nil, err
	}
	for _, raw := range found {
		t := taskOf(raw)
		if t.jobID != jobID || t.instanceID != vm.ID || !p.sameExport(raw) {
			continue
		}
		switch t.state {
		case ec2types.ExportTaskStateCompleted:
			if _, err := p.headObject(ctx, t.bucket, t.key); err == nil {
				log.Info("reusing the job's completed export task", "task", t.id, "bucket", t.bucket, "key", t.key)
				return t, nil
			}
			log.Info("the job's completed export task lost its object; exporting again", "task", t.id)
		case ec2types.ExportTaskStateActive:
			log.Info("waiting for the job's running export task", "task", t.id)
			return p.waitExportTask(ctx, c, t, opts, log)
		}
	}
	return p.createExportTask(ctx, c, vm, jobID, opts, log)
}

// sameExport reports whether a task writes what the configuration asks
// for: bucket, prefix, format and container.
func (p *Provider) sameExport(t ec2types.ExportTask) bool {
	et := &p.cfg.ExportTask
	s := t.ExportToS3Task
	return s != nil && aws.ToString(s.S3Bucket) == et.Bucket && strings.HasPrefix(aws.ToString(s.S3Key), et.prefix()) &&
		strings.EqualFold(string(s.DiskImageFormat), et.diskFormat()) && strings.EqualFold(string(s.ContainerFormat), et.Container)
}

// createExportTask starts VM Export, tagged for the job in the call itself
// so the task never exists untagged, and waits for it. A creation whose
// answer is lost (a timeout, a cancel) may still have created a task: the
// job's tasks still running are cancelled then.
func (p *Provider) createExportTask(ctx context.Context, c *ec2.Client, vm *providers.VMInfo, jobID string, opts providers.ExportOptions, log *slog.Logger) (*exportTask, error) {
	et := &p.cfg.ExportTask
	in := &ec2.CreateInstanceExportTaskInput{
		InstanceId:        aws.String(vm.ID),
		TargetEnvironment: ec2types.ExportEnvironment(et.targetEnvironment()),
		Description:       aws.String(truncate(fmt.Sprintf("hypersdk export job %s of %s", jobID, vm.ID), 255)),
		ExportToS3Task: &ec2types.ExportToS3TaskSpecification{
			DiskImageFormat: ec2types.DiskImageFormat(strings.ToUpper(et.diskFormat())),
			S3Bucket:        aws.String(et.Bucket),
			S3Prefix:        aws.String(et.prefix()),
		},
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeExportInstanceTask,
			Tags:         []ec2types.Tag{{Key: aws.String(TagJob), Value: aws.String(jobID)}, {Key: aws.String(TagVM), Value: aws.String(vm.ID)}},
		}},
	}
	if et.Container != "" {
		in.ExportToS3Task.ContainerFormat = ec2types.ContainerFormat(strings.ToLower(et.Container))
	}
	out, err := c.CreateInstanceExportTask(ctx, in)
	if err != nil {
		switch code := apiCode(err); {
		case code == "NotExportable":
			return nil, p.exportRefusal(vm, []string{"AWS refused it: " + apiMessage(err)})
		case code != "" && httpStatus(err) < 500 && !throttleCodes[code]:
			// Refused for what it asked (a bucket VM Export cannot write to,
			// a bad parameter, credentials): nothing was created.
			return nil, classifyRequest(p.apiError("create an export task of "+vm.ID, err))
		}
		p.cancelJobTasks(jobID, log)
		return nil, p.apiError("create an export task of "+vm.ID, err)
	}
	t := taskOf(*out.ExportTask)
	if t.id == "" {
		return nil, fmt.Errorf("aws %s: CreateInstanceExportTask answered without a task id", p.name)
	}
	if t.jobID == "" {
		t.jobID = jobID
	}
	log.Info("export task created", "task", t.id, "bucket", et.Bucket, "key", t.key, "format", et.diskFormat(), "container", et.Container)
	return p.waitExportTask(ctx, c, t, opts, log)
}

// classifyRequest marks a refusal of the request itself permanent (a 4xx
// that is no throttling), keeping ErrAuth.
func classifyRequest(err error) error {
	if errors.Is(err, providers.ErrAuth) {
		return err
	}
	return providers.Permanent(err)
}

// waitExportTask polls DescribeExportTasks until the task is completed,
// reporting its status messages as progress. The SDK's
// ExportTaskCompleted waiter is not used: it has no failure state, so a
// task AWS cancels (how VM Export ends a task it could not complete) would
// be waited for until the timeout. A task that ends cancelled fails the
// export permanently with AWS's status message (exporting the same
// instance again meets the same fate); when ctx ends or the wait times
// out, the task is cancelled.
func (p *Provider) waitExportTask(ctx context.Context, c *ec2.Client, t *exportTask, opts providers.ExportOptions, log *slog.Logger) (*exportTask, error) {
	ctx, cancel := context.WithTimeout(ctx, p.tune.exportTimeout)
	defer cancel()
	lastStatus := "\x00"
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff.Wait(ctx, p.tune.exportPoll.Delay(attempt)); err != nil {
				p.cancelExportTask(t, log)
				return nil, fmt.Errorf("aws %s: wait for export task %s: %w", p.name, t.id, context.Cause(ctx))
			}
		}
		out, err := c.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{t.id}})
		if err != nil {
			if ctx.Err() != nil {
				p.cancelExportTask(t, log)
				return nil, fmt.Errorf("aws %s: wait for export task %s: %w", p.name, t.id, context.Cause(ctx))
			}
			if throttleCodes[apiCode(err)] || httpStatus(err) >= 500 || apiCode(err) == "" {
				log.Warn("describing the export task failed; polling on", "task", t.id, "err", err)
				continue
			}
			p.cancelExportTask(t, log)
			return nil, p.apiError("describe export task "+t.id, err)
		}
		idx := slices.IndexFunc(out.ExportTasks, func(e ec2types.ExportTask) bool { return aws.ToString(e.ExportTaskId) == t.id })
		if idx < 0 {
			return nil, fmt.Errorf("aws %s: export task %s is no longer listed", p.name, t.id)
		}
		now := taskOf(out.ExportTasks[idx])
		now.jobID = t.jobID
		if now.key == "" {
			now.key, now.bucket = p.cfg.ExportTask.prefix()+t.id+"."+p.cfg.ExportTask.extension(), p.cfg.ExportTask.Bucket
		}
		*t = *now
		if t.status != lastStatus {
			lastStatus = t.status
			log.Info("export task", "task", t.id, "state", string(t.state), "status", t.status)
			opts.Report(progress.Report{Phase: progress.PhasePreparing, Item: fmt.Sprintf("export task %s: %s %s", t.id, t.state, t.status)})
		}
		switch t.state {
		case ec2types.ExportTaskStateCompleted:
			return t, nil
		case ec2types.ExportTaskStateCancelling, ec2types.ExportTaskStateCancelled:
			return nil, providers.Permanent(fmt.Errorf("aws %s: export task %s of %s ended %s: %s", p.name, t.id, t.instanceID, t.state, cmpOr(t.status, "no reason given")))
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// cancelExportTask cancels t if it is still running, on a context of its
// own (the export's is often why it runs). A task that is no longer
// active (AWS refuses to cancel those) or gone is left as it is.
func (p *Provider) cancelExportTask(t *exportTask, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	c, _, _, err := p.s3Clients()
	if err != nil {
		return
	}
	if err := p.cancelTask(ctx, c, t.id); err != nil {
		log.Warn("cancelling the export task failed; the orphan sweep will retry", "task", t.id, "err", err)
		return
	}
	log.Info("export task cancelled", "task", t.id)
}

// cancelTask cancels an export task; one that is not active any more
// (completed, cancelling, cancelled) or unknown is not an error.
func (p *Provider) cancelTask(ctx context.Context, c *ec2.Client, id string) error {
	_, err := c.CancelExportTask(ctx, &ec2.CancelExportTaskInput{ExportTaskId: aws.String(id)})
	if err == nil || apiCode(err) == "InvalidExportTaskID.NotFound" {
		return nil
	}
	// EC2 refuses to cancel a task that is not active; what matters is
	// whether it still is.
	out, derr := c.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{ExportTaskIds: []string{id}})
	if derr == nil && len(out.ExportTasks) == 1 && out.ExportTasks[0].State != ec2types.ExportTaskStateActive {
		return nil
	}
	return p.apiError("cancel export task "+id, err)
}

// cancelJobTasks cancels every export task of the job still running.
func (p *Provider) cancelJobTasks(jobID string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	c, _, _, err := p.s3Clients()
	if err != nil {
		return
	}
	found, err := p.findExportTasks(ctx, c, ec2types.Filter{Name: aws.String("tag:" + TagJob), Values: []string{ec2Literal(jobID)}})
	if err != nil {
		log.Warn("looking up the job's export tasks failed; the orphan sweep will retry", "err", err)
		return
	}
	for _, raw := range found {
		if t := taskOf(raw); t.jobID == jobID && t.state == ec2types.ExportTaskStateActive {
			p.cancelExportTask(t, log)
		}
	}
}

// endExportTask ends the platform side of an export-task export, however
// it ended: the job's tasks still running are cancelled, and the object of
// the job's task is deleted when export_task.delete_object says so — that object only, never another key.
func (p *Provider) endExportTask(jobID string, t *exportTask, log *slog.Logger) {
	p.cancelJobTasks(jobID, log)
	if t == nil || !p.cfg.ExportTask.DeleteObject || t.state != ec2types.ExportTaskStateCompleted {
		return
	}
	if err := p.deleteExportObject(t.bucket, t.key); err != nil {
		log.Warn("deleting the export object failed; the orphan sweep will retry", "bucket", t.bucket, "key", t.key, "err", err)
		return
	}
	log.Info("export object deleted", "bucket", t.bucket, "key", t.key)
}

// deleteExportObject deletes an object an export task wrote, refusing any
// other: it must lie in the configured bucket under the configured prefix.
func (p *Provider) deleteExportObject(bucket, key string) error {
	et := &p.cfg.ExportTask
	if bucket != et.Bucket || !strings.HasPrefix(key, et.prefix()) || key == "" {
		return fmt.Errorf("aws %s: s3://%s/%s is not under export_task's s3://%s/%s; not deleted", p.name, bucket, key, et.Bucket, et.prefix())
	}
	_, s3c, _, err := p.s3Clients()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return p.apiError(fmt.Sprintf("delete s3://%s/%s", bucket, key), err)
	}
	return nil
}

// findExportTasks lists the export tasks matching filter (DescribeExportTasks
// has no pages).
func (p *Provider) findExportTasks(ctx context.Context, c *ec2.Client, filter ec2types.Filter) ([]ec2types.ExportTask, error) {
	out, err := c.DescribeExportTasks(ctx, &ec2.DescribeExportTasksInput{Filters: []ec2types.Filter{filter}})
	if err != nil {
		return nil, p.apiError("describe export tasks", err)
	}
	return out.ExportTasks, nil
}

// sweepExportTasks cancels the export tasks of jobs that are over and,
// when export_task.delete_object says so, deletes the objects their
// completed tasks wrote (only under the configured bucket and prefix).
// Without an export_task bucket the provider creates no tasks, and keys
// limited to the EBS direct path may not describe them: nothing is asked.
func (p *Provider) sweepExportTasks(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	if p.cfg.ExportTask.Bucket == "" {
		return nil, nil
	}
	c, _, _, err := p.s3Clients()
	if err != nil {
		return nil, err
	}
	found, err := p.findExportTasks(ctx, c, ec2types.Filter{Name: aws.String("tag-key"), Values: []string{TagJob}})
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, raw := range found {
		t := taskOf(raw)
		if t.jobID == "" || isLive(t.jobID) {
			continue
		}
		switch t.state {
		case ec2types.ExportTaskStateActive:
			if err := p.cancelTask(ctx, c, t.id); err != nil {
				errs = append(errs, err)
				continue
			}
			p.log.Info("orphaned export task cancelled", "task", t.id, "job_id", t.jobID)
			done = append(done, t.id+" (cancelled)")
		case ec2types.ExportTaskStateCompleted:
			et := &p.cfg.ExportTask
			if !et.DeleteObject || t.bucket != et.Bucket || !strings.HasPrefix(t.key, et.prefix()) {
				continue
			}
			if _, err := p.headObject(ctx, t.bucket, t.key); err != nil {
				continue // already gone (or unreadable: the next sweep tries again)
			}
			if err := p.deleteExportObject(t.bucket, t.key); err != nil {
				errs = append(errs, err)
				continue
			}
			p.log.Info("orphaned export object deleted", "task", t.id, "job_id", t.jobID, "bucket", t.bucket, "key", t.key)
			done = append(done, fmt.Sprintf("s3://%s/%s", t.bucket, t.key))
		}
	}
	return done, errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// apiMessage is the message of an AWS error, "" when it has none.
func apiMessage(err error) string {
	var ae interface{ ErrorMessage() string }
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return err.Error()
}
