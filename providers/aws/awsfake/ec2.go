package awsfake

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ec2Namespace and ec2Version are the EC2 Query API version the SDK speaks.
const (
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	ec2Version   = "2016-11-15"
	ec2Time      = "2006-01-02T15:04:05.000Z"
)

// apiError is an error answer of either protocol: HTTP status, error code
// and a message safe to return.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

type ec2Action func(q query) (ec2Response, error)

// ec2Response is a response document; meta sets the parts every EC2
// response carries.
type ec2Response interface{ meta() *ec2Meta }

type ec2Meta struct {
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
}

func (m *ec2Meta) meta() *ec2Meta { return m }

// set is an EC2 list: <xxxSet><item>…</item></xxxSet>, present even when
// empty, as EC2 writes it.
type set[T any] struct {
	Items []T `xml:"item"`
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(tags map[string]string) set[ec2Tag] {
	var s set[ec2Tag]
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		s.Items = append(s.Items, ec2Tag{k, tags[k]})
	}
	return s
}

func (s *Server) ec2Actions() map[string]ec2Action {
	return map[string]ec2Action{
		"DescribeInstances":     s.describeInstances,
		"DescribeInstanceTypes": s.describeInstanceTypes,
		"DescribeVolumes":       s.describeVolumes,
		"CreateSnapshots":       s.createSnapshots,
		"DescribeSnapshots":     s.describeSnapshots,
		"CreateTags":            s.createTags,
		"DeleteSnapshot":        s.deleteSnapshot,
		"DescribeImages":        s.describeImages,
		// export.go
		"CreateInstanceExportTask": s.createInstanceExportTask,
		"DescribeExportTasks":      s.describeExportTasks,
		"CancelExportTask":         s.cancelExportTask,
	}
}

func (s *Server) serveEC2(w http.ResponseWriter, r *http.Request, body []byte, requestID string) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeEC2Error(w, requestID, http.StatusBadRequest, "MalformedQueryString", "The query string is malformed.")
		return
	}
	q := query(form)
	if fail := s.verifySignature(r, body, "ec2"); fail != nil {
		s.countRefused()
		s.log.Warn("awsfake: EC2 request refused", "reason", fail.message, "request_id", requestID)
		switch fail.kind {
		case authMissing:
			writeEC2Error(w, requestID, http.StatusUnauthorized, "MissingAuthenticationToken", "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.")
		case authExpired:
			writeEC2Error(w, requestID, http.StatusBadRequest, "RequestExpired", "Request has expired.")
		default:
			writeEC2Error(w, requestID, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		}
		return
	}
	action := q.get("Action")
	if action == "" {
		writeEC2Error(w, requestID, http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action.")
		return
	}
	handler, ok := s.ec2Actions()[action]
	throttled := ok && s.throttle(s.currentFaults().ThrottleEC2)
	s.count(action, throttled)
	switch {
	case !ok:
		writeEC2Error(w, requestID, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action))
	case q.get("Version") != ec2Version:
		writeEC2Error(w, requestID, http.StatusBadRequest, "NoSuchVersion", fmt.Sprintf("The requested version (%s) is not valid.", q.get("Version")))
	case throttled:
		s.log.Info("awsfake: EC2 request throttled", "action", action, "request_id", requestID)
		writeEC2Error(w, requestID, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	case q.bool("DryRun"):
		writeEC2Error(w, requestID, http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	default:
		resp, err := handler(q)
		if err != nil {
			ae, ok := err.(*apiError)
			if !ok {
				ae = &apiError{http.StatusInternalServerError, "InternalError", "An internal error has occurred."}
			}
			writeEC2Error(w, requestID, ae.status, ae.code, ae.message)
			return
		}
		m := resp.meta()
		m.Xmlns, m.RequestID = ec2Namespace, requestID
		out, err := xml.Marshal(resp)
		if err != nil {
			writeEC2Error(w, requestID, http.StatusInternalServerError, "InternalError", "An internal error has occurred.")
			return
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.Header().Set("x-amzn-RequestId", requestID)
		_, _ = w.Write([]byte(xml.Header))
		_, _ = w.Write(out)
	}
}

// writeEC2Error writes EC2's error document:
// <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>.
func writeEC2Error(w http.ResponseWriter, requestID string, status int, code, message string) {
	doc := struct {
		XMLName   xml.Name `xml:"Response"`
		Code      string   `xml:"Errors>Error>Code"`
		Message   string   `xml:"Errors>Error>Message"`
		RequestID string   `xml:"RequestID"`
	}{Code: code, Message: message, RequestID: requestID}
	out, _ := xml.Marshal(doc)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

// --- DescribeInstances ---

type describeInstancesResponse struct {
	XMLName xml.Name `xml:"DescribeInstancesResponse"`
	ec2Meta
	Reservations set[xmlReservation] `xml:"reservationSet"`
	NextToken    string              `xml:"nextToken,omitempty"`
}

type xmlReservation struct {
	ReservationID string           `xml:"reservationId"`
	OwnerID       string           `xml:"ownerId"`
	Groups        set[struct{}]    `xml:"groupSet"`
	Instances     set[xmlInstance] `xml:"instancesSet"`
}

type xmlInstance struct {
	InstanceID    string `xml:"instanceId"`
	ImageID       string `xml:"imageId,omitempty"`
	InstanceState struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	} `xml:"instanceState"`
	InstanceType string `xml:"instanceType"`
	LaunchTime   string `xml:"launchTime"`
	Placement    struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	Platform           string          `xml:"platform,omitempty"`
	Architecture       string          `xml:"architecture"`
	RootDeviceType     string          `xml:"rootDeviceType"`
	RootDeviceName     string          `xml:"rootDeviceName,omitempty"`
	BlockDeviceMapping set[xmlIBDM]    `xml:"blockDeviceMapping"`
	VirtualizationType string          `xml:"virtualizationType"`
	TagSet             set[ec2Tag]     `xml:"tagSet"`
	Hypervisor         string          `xml:"hypervisor"`
	PlatformDetails    string          `xml:"platformDetails"`
	BootMode           string          `xml:"bootMode,omitempty"`
	CurrentBootMode    string          `xml:"currentInstanceBootMode,omitempty"`
	UsageOperation     string          `xml:"usageOperation"`
	ProductCodes       set[xmlProduct] `xml:"productCodes"`
	NetworkInterfaces  set[xmlNIC]     `xml:"networkInterfaceSet"`
	SecurityGroups     set[struct{}]   `xml:"groupSet"`
	Monitoring         *xmlMonitoring  `xml:"monitoring"`
	EbsOptimized       bool            `xml:"ebsOptimized"`
	EnaSupport         bool            `xml:"enaSupport"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	StateReason        *xmlStateReason `xml:"stateReason,omitempty"`
}

type xmlProduct struct {
	ProductCode string `xml:"productCode"`
	Type        string `xml:"type"`
}

func productSet(codes []ProductCode) set[xmlProduct] {
	var s set[xmlProduct]
	for _, c := range codes {
		s.Items = append(s.Items, xmlProduct{c.ID, c.Type})
	}
	return s
}

// xmlNIC is an attached network interface, as much of it as the
// provider reads.
type xmlNIC struct {
	NetworkInterfaceID string `xml:"networkInterfaceId"`
	SubnetID           string `xml:"subnetId"`
	MacAddress         string `xml:"macAddress"`
	InterfaceType      string `xml:"interfaceType"`
	Status             string `xml:"status"`
	Attachment         struct {
		AttachmentID string `xml:"attachmentId"`
		DeviceIndex  int    `xml:"deviceIndex"`
		Status       string `xml:"status"`
	} `xml:"attachment"`
}

type xmlMonitoring struct {
	State string `xml:"state"`
}

type xmlStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlIBDM struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

func (s *Server) describeInstances(q query) (ec2Response, error) {
	ids := q.list("InstanceId")
	if err := refuseIDsWithMaxResults(q, ids, "instanceIds"); err != nil {
		return nil, err
	}
	fs := q.filters()
	s.mu.Lock()
	defer s.mu.Unlock()
	var picked []Instance
	for _, id := range ids {
		if s.instance(id) == nil {
			return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
		}
	}
	for _, in := range s.instances {
		if len(ids) > 0 && !slices.Contains(ids, in.ID) {
			continue
		}
		ok, err := matchFilters(fs, func(name string) ([]string, bool) { return s.instanceFilterValues(&in, name) })
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, in)
		}
	}
	page, next, err := paginate(q, "DescribeInstances", picked, 5, 1000)
	if err != nil {
		return nil, err
	}
	resp := &describeInstancesResponse{NextToken: next}
	for _, in := range page {
		resp.Reservations.Items = append(resp.Reservations.Items, xmlReservation{
			ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"),
			OwnerID:       s.opts.AccountID,
			Instances:     set[xmlInstance]{Items: []xmlInstance{s.xmlInstance(&in)}},
		})
	}
	return resp, nil
}

func (s *Server) instance(id string) *Instance {
	for i := range s.instances {
		if s.instances[i].ID == id {
			return &s.instances[i]
		}
	}
	return nil
}

func (s *Server) instanceFilterValues(in *Instance, name string) ([]string, bool) {
	switch name {
	case "instance-id":
		return []string{in.ID}, true
	case "instance-state-name":
		return []string{in.state()}, true
	case "instance-state-code":
		return []string{strconv.Itoa(instanceStateCodes[in.state()])}, true
	case "instance-type":
		return []string{in.Type}, true
	case "architecture":
		return []string{in.architecture()}, true
	case "platform-details":
		return []string{in.platformDetails()}, true
	case "availability-zone":
		return []string{s.opts.AvailabilityZone}, true
	case "image-id":
		return []string{in.ImageID}, true
	case "block-device-mapping.volume-id":
		var out []string
		for _, d := range in.Devices {
			out = append(out, d.VolumeID)
		}
		return out, true
	}
	return tagFilterValues(name, s.tagsOf(in.ID))
}

func (s *Server) xmlInstance(in *Instance) xmlInstance {
	launch := launchTime(in.LaunchTime)
	x := xmlInstance{
		InstanceID:         in.ID,
		InstanceType:       in.Type,
		LaunchTime:         launch,
		Platform:           in.Platform,
		Architecture:       in.architecture(),
		RootDeviceType:     "ebs",
		RootDeviceName:     in.rootDeviceName(),
		VirtualizationType: "hvm",
		TagSet:             tagSet(s.tagsOf(in.ID)),
		Hypervisor:         "xen",
		PlatformDetails:    in.platformDetails(),
		UsageOperation:     in.usageOperation(),
		ImageID:            in.ImageID,
		ProductCodes:       productSet(in.ProductCodes),
		BootMode:           in.BootMode,
		Monitoring:         &xmlMonitoring{State: "disabled"},
		EnaSupport:         true,
		SourceDestCheck:    true,
	}
	if in.BootMode == "legacy-bios" || in.BootMode == "uefi" {
		x.CurrentBootMode = in.BootMode
	}
	x.InstanceState.Name = in.state()
	x.InstanceState.Code = instanceStateCodes[in.state()]
	x.Placement.AvailabilityZone = s.opts.AvailabilityZone
	x.Placement.Tenancy = "default"
	if in.state() == "stopped" {
		x.StateReason = &xmlStateReason{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
	}
	for i := range in.NetworkInterfaces {
		var n xmlNIC
		n.NetworkInterfaceID = fmt.Sprintf("eni-%s%02d", strings.TrimPrefix(in.ID, "i-")[:15], i)
		n.SubnetID = "subnet-0123456789abcdef0"
		sum := sha256.Sum256([]byte(in.ID))
		n.MacAddress = fmt.Sprintf("02:%02x:%02x:%02x:00:%02x", sum[0], sum[1], sum[2], i)
		n.InterfaceType, n.Status = "interface", "in-use"
		n.Attachment.AttachmentID = "eni-attach-" + n.NetworkInterfaceID[4:]
		n.Attachment.DeviceIndex, n.Attachment.Status = i, "attached"
		x.NetworkInterfaces.Items = append(x.NetworkInterfaces.Items, n)
	}
	for _, d := range in.Devices {
		var m xmlIBDM
		m.DeviceName = d.Name
		m.Ebs.VolumeID = d.VolumeID
		m.Ebs.Status = "attached"
		m.Ebs.AttachTime = launch
		m.Ebs.DeleteOnTermination = d.Name == in.rootDeviceName()
		x.BlockDeviceMapping.Items = append(x.BlockDeviceMapping.Items, m)
	}
	return x
}

func launchTime(t time.Time) string {
	if t.IsZero() {
		t = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return t.UTC().Format(ec2Time)
}

// --- DescribeInstanceTypes ---

type describeInstanceTypesResponse struct {
	XMLName xml.Name `xml:"DescribeInstanceTypesResponse"`
	ec2Meta
	InstanceTypes set[xmlInstanceType] `xml:"instanceTypeSet"`
	NextToken     string               `xml:"nextToken,omitempty"`
}

type xmlInstanceType struct {
	InstanceType      string `xml:"instanceType"`
	CurrentGeneration bool   `xml:"currentGeneration"`
	ProcessorInfo     struct {
		SupportedArchitectures set[string] `xml:"supportedArchitectures"`
	} `xml:"processorInfo"`
	VCpuInfo struct {
		DefaultVCpus int32 `xml:"defaultVCpus"`
	} `xml:"vCpuInfo"`
	MemoryInfo struct {
		SizeInMiB int64 `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
	Hypervisor         string      `xml:"hypervisor"`
	SupportedBootModes set[string] `xml:"supportedBootModes"`
}

func (s *Server) describeInstanceTypes(q query) (ec2Response, error) {
	names := q.list("InstanceType")
	fs := q.filters()
	var picked []InstanceType
	var missing []string
	for _, n := range names {
		if !slices.ContainsFunc(s.opts.Spec.InstanceTypes, func(t InstanceType) bool { return t.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceType",
			fmt.Sprintf("The following supplied instance types do not exist: [%s]", strings.Join(missing, ", "))}
	}
	for _, t := range s.opts.Spec.InstanceTypes {
		if len(names) > 0 && !slices.Contains(names, t.Name) {
			continue
		}
		ok, err := matchFilters(fs, func(name string) ([]string, bool) {
			switch name {
			case "instance-type":
				return []string{t.Name}, true
			case "processor-info.supported-architecture":
				return t.Architectures, true
			case "vcpu-info.default-vcpus":
				return []string{strconv.Itoa(int(t.VCPUs))}, true
			case "memory-info.size-in-mib":
				return []string{strconv.FormatInt(t.MemoryMiB, 10)}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, t)
		}
	}
	page, next, err := paginate(q, "DescribeInstanceTypes", picked, 5, 100)
	if err != nil {
		return nil, err
	}
	resp := &describeInstanceTypesResponse{NextToken: next}
	for _, t := range page {
		var x xmlInstanceType
		x.InstanceType = t.Name
		x.CurrentGeneration = true
		x.ProcessorInfo.SupportedArchitectures.Items = t.Architectures
		x.VCpuInfo.DefaultVCpus = t.VCPUs
		x.MemoryInfo.SizeInMiB = t.MemoryMiB
		x.Hypervisor = "nitro"
		x.SupportedBootModes.Items = []string{"uefi"}
		if slices.Contains(t.Architectures, "x86_64") {
			x.SupportedBootModes.Items = []string{"legacy-bios", "uefi"}
		}
		resp.InstanceTypes.Items = append(resp.InstanceTypes.Items, x)
	}
	return resp, nil
}

// --- DescribeVolumes ---

type describeVolumesResponse struct {
	XMLName xml.Name `xml:"DescribeVolumesResponse"`
	ec2Meta
	Volumes   set[xmlVolume] `xml:"volumeSet"`
	NextToken string         `xml:"nextToken,omitempty"`
}

type xmlVolume struct {
	VolumeID           string                   `xml:"volumeId"`
	Size               int32                    `xml:"size"`
	SnapshotID         string                   `xml:"snapshotId"`
	AvailabilityZone   string                   `xml:"availabilityZone"`
	Status             string                   `xml:"status"`
	CreateTime         string                   `xml:"createTime"`
	Attachments        set[xmlVolumeAttachment] `xml:"attachmentSet"`
	TagSet             set[ec2Tag]              `xml:"tagSet"`
	VolumeType         string                   `xml:"volumeType"`
	Iops               int32                    `xml:"iops,omitempty"`
	Throughput         int32                    `xml:"throughput,omitempty"`
	Encrypted          bool                     `xml:"encrypted"`
	MultiAttachEnabled bool                     `xml:"multiAttachEnabled"`
}

type xmlVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

// attachment finds the instance a volume is attached to.
func (s *Server) attachment(volumeID string) (*Instance, *Device) {
	for i := range s.instances {
		for j := range s.instances[i].Devices {
			if s.instances[i].Devices[j].VolumeID == volumeID {
				return &s.instances[i], &s.instances[i].Devices[j]
			}
		}
	}
	return nil, nil
}

func (s *Server) describeVolumes(q query) (ec2Response, error) {
	ids := q.list("VolumeId")
	if err := refuseIDsWithMaxResults(q, ids, "volumeIds"); err != nil {
		return nil, err
	}
	fs := q.filters()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.volumes[id] == nil {
			return nil, &apiError{http.StatusBadRequest, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id)}
		}
	}
	var picked []xmlVolume
	for _, id := range s.volOrder {
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		x := s.xmlVolume(s.volumes[id])
		ok, err := matchFilters(fs, func(name string) ([]string, bool) {
			switch name {
			case "volume-id":
				return []string{x.VolumeID}, true
			case "status":
				return []string{x.Status}, true
			case "size":
				return []string{strconv.Itoa(int(x.Size))}, true
			case "volume-type":
				return []string{x.VolumeType}, true
			case "availability-zone":
				return []string{x.AvailabilityZone}, true
			case "attachment.instance-id", "attachment.device", "attachment.status":
				var out []string
				for _, a := range x.Attachments.Items {
					out = append(out, map[string]string{
						"attachment.instance-id": a.InstanceID, "attachment.device": a.Device, "attachment.status": a.Status,
					}[name])
				}
				return out, true
			}
			return tagFilterValues(name, s.tagsOf(x.VolumeID))
		})
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, x)
		}
	}
	page, next, err := paginate(q, "DescribeVolumes", picked, 5, 500)
	if err != nil {
		return nil, err
	}
	return &describeVolumesResponse{Volumes: set[xmlVolume]{Items: page}, NextToken: next}, nil
}

func (s *Server) xmlVolume(v *Volume) xmlVolume {
	x := xmlVolume{
		VolumeID:         v.ID,
		Size:             v.SizeGiB,
		AvailabilityZone: s.opts.AvailabilityZone,
		Status:           "available",
		CreateTime:       launchTime(time.Time{}),
		TagSet:           tagSet(s.tagsOf(v.ID)),
		VolumeType:       orDefault(v.Type, "gp3"),
		Encrypted:        v.Encrypted,
	}
	if x.VolumeType == "gp3" {
		x.Iops, x.Throughput = 3000, 125
	}
	if in, d := s.attachment(v.ID); in != nil {
		x.Status = "in-use"
		x.Attachments.Items = []xmlVolumeAttachment{{
			VolumeID: v.ID, InstanceID: in.ID, Device: d.Name, Status: "attached",
			AttachTime: launchTime(in.LaunchTime), DeleteOnTermination: d.Name == in.rootDeviceName(),
		}}
	}
	return x
}

// --- CreateTags ---

type returnResponse struct {
	XMLName xml.Name
	ec2Meta
	Return bool `xml:"return"`
}

func (s *Server) createTags(q query) (ec2Response, error) {
	ids := q.list("ResourceId")
	tags := q.tags("Tag")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter resourceIdSet"}
	}
	if len(tags) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter tagSet"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if err := s.resourceExists(id); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		m := s.tags[id]
		if m == nil {
			m = map[string]string{}
			s.tags[id] = m
		}
		for _, t := range tags {
			m[t.Key] = t.Value
		}
	}
	return &returnResponse{XMLName: xml.Name{Local: "CreateTagsResponse"}, Return: true}, nil
}

func (s *Server) resourceExists(id string) error {
	switch {
	case strings.HasPrefix(id, "i-"):
		if s.instance(id) != nil {
			return nil
		}
		return &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
	case strings.HasPrefix(id, "vol-"):
		if s.volumes[id] != nil {
			return nil
		}
		return &apiError{http.StatusBadRequest, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id)}
	case strings.HasPrefix(id, "export-"):
		if s.exportTasks[id] != nil {
			return nil
		}
		return &apiError{http.StatusBadRequest, "InvalidExportTaskID.NotFound", fmt.Sprintf("The export task ID '%s' does not exist", id)}
	case strings.HasPrefix(id, "snap-"):
		if sn := s.snapshots[id]; sn != nil && !sn.deleted {
			return nil
		}
		return snapshotNotFound(id)
	}
	return &apiError{http.StatusBadRequest, "InvalidID", fmt.Sprintf("The ID '%s' is not valid", id)}
}

// tagsOf returns the live tag map of a resource (callers hold s.mu).
func (s *Server) tagsOf(id string) map[string]string {
	return s.tags[id]
}

// --- DescribeImages ---

type describeImagesResponse struct {
	XMLName xml.Name `xml:"DescribeImagesResponse"`
	ec2Meta
	Images    set[xmlImage] `xml:"imagesSet"`
	NextToken string        `xml:"nextToken,omitempty"`
}

type xmlImage struct {
	ImageID            string          `xml:"imageId"`
	ImageLocation      string          `xml:"imageLocation"`
	ImageState         string          `xml:"imageState"`
	ImageOwnerID       string          `xml:"imageOwnerId"`
	IsPublic           bool            `xml:"isPublic"`
	ProductCodes       set[xmlProduct] `xml:"productCodes"`
	Architecture       string          `xml:"architecture"`
	ImageType          string          `xml:"imageType"`
	Platform           string          `xml:"platform,omitempty"`
	PlatformDetails    string          `xml:"platformDetails"`
	UsageOperation     string          `xml:"usageOperation"`
	Name               string          `xml:"name"`
	RootDeviceType     string          `xml:"rootDeviceType"`
	RootDeviceName     string          `xml:"rootDeviceName"`
	BlockDeviceMapping set[struct{}]   `xml:"blockDeviceMapping"`
	VirtualizationType string          `xml:"virtualizationType"`
	Hypervisor         string          `xml:"hypervisor"`
	TagSet             set[ec2Tag]     `xml:"tagSet"`
}

// describeImages answers ImageId.N (an unknown id is
// InvalidAMIID.NotFound, as for a deregistered AMI), Owner.N and the
// filters image-id, name, platform-details and product-code.
func (s *Server) describeImages(q query) (ec2Response, error) {
	ids := q.list("ImageId")
	if err := refuseIDsWithMaxResults(q, ids, "imageIds"); err != nil {
		return nil, err
	}
	fs := q.filters()
	for _, id := range ids {
		if !slices.ContainsFunc(s.opts.Spec.Images, func(im Image) bool { return im.ID == id }) {
			return nil, &apiError{http.StatusBadRequest, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", id)}
		}
	}
	var picked []Image
	for _, im := range s.opts.Spec.Images {
		if len(ids) > 0 && !slices.Contains(ids, im.ID) {
			continue
		}
		ok, err := matchFilters(fs, func(name string) ([]string, bool) {
			switch name {
			case "image-id":
				return []string{im.ID}, true
			case "name":
				return []string{im.Name}, true
			case "platform-details":
				return []string{orDefault(im.PlatformDetails, "Linux/UNIX")}, true
			case "product-code":
				var out []string
				for _, c := range im.ProductCodes {
					out = append(out, c.ID)
				}
				return out, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, im)
		}
	}
	page, next, err := paginate(q, "DescribeImages", picked, 5, 1000)
	if err != nil {
		return nil, err
	}
	resp := &describeImagesResponse{NextToken: next}
	for _, im := range page {
		resp.Images.Items = append(resp.Images.Items, xmlImage{
			ImageID: im.ID, ImageLocation: s.opts.AccountID + "/" + im.Name, ImageState: "available", ImageOwnerID: s.opts.AccountID,
			ProductCodes: productSet(im.ProductCodes), Architecture: "x86_64", ImageType: "machine", Platform: im.Platform,
			PlatformDetails: orDefault(im.PlatformDetails, "Linux/UNIX"), UsageOperation: orDefault(im.UsageOperation, "RunInstances"),
			Name: im.Name, RootDeviceType: "ebs", RootDeviceName: "/dev/xvda", VirtualizationType: "hvm", Hypervisor: "xen",
		})
	}
	return resp, nil
}
