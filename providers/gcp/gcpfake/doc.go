// Package gcpfake is the Google Cloud test target of providers/gcp and
// the backend of its --demo: no emulator exists for Compute Engine or
// Cloud Build, so Server is an httptest server speaking their REST JSON
// faithfully enough that the real Go clients (cloud.google.com/go/compute
// apiv1 REST clients, cloud.google.com/go/cloudbuild apiv1/v2 REST client,
// google.golang.org/api's OAuth transport) run unmodified, with Cloud
// Storage served by fake-gcs-server in process.
//
// Wire: paths /compute/v1/projects/{p}/… and /v1/projects/{p}/builds…;
// bodies are the APIs' JSON (protojson: lowerCamel names, int64 as
// strings), enums as numbers when the client asks with
// $alt=json;enum-encoding=int; errors are google.rpc.Status JSON
// ({"error":{"code","message","status","errors":[…]}}) with the HTTP code.
// Every request needs an OAuth 2.0 bearer token from the server's token
// endpoint, which grants one to a JWT assertion signed with the service
// account key KeyJSON returns (the flow Google's libraries use for a key
// file).
//
// Compute Engine: instances (list with paging and label filters, get,
// delete), machineTypes.get
// (predefined and custom-N-M types), disks (list with label filters, get,
// delete; attached disks cannot be deleted), snapshots (insert, get, list
// with label filters, delete; a snapshot freezes its disk's content),
// images (list, delete; AddImage plants one), and zone/global operations
// that answer RUNNING for Faults.PendingPolls polls before DONE.
//
// Cloud Build: builds.create answers a long-running operation
// (operations/build/{project}/{base64 id}) whose metadata is
// BuildOperationMetadata; operations.get, builds.get, builds.cancel and
// builds.list (filters tags="…" and status="…") follow. A build whose step
// runs the gce_vm_image_export builder plays it: it makes a worker VM and
// a buffer disk attached to it, labelled like the builder's
// (gce-image-export-tmp, plus the -labels given), waits Faults.BuildDelay, writes the snapshot's image to
// -destination_uri — a gzipped GNU tar holding manifest.json (when the disk
// has licences) then disk.raw, every byte written (the real builder copies
// the device whole, pgzip level 3) — as one object, or with Faults.PartSize as parts composed into a composite
// object the way the builder's buffered writer does; deletes its
// worker and buffer disk; writes the log to <logsBucket>/log-<id>.txt before the build is
// marked finished; and ends SUCCESS, FAILURE (with the builder's own error
// line in the log) or TIMEOUT. A cancelled build stops where it is and
// leaves its worker VM and buffer disk, as a killed step does. Instances
// can be listed with label filters and deleted (their disks detached).
//
// Faults: BuildDelay, BuildError (a failure with that line),
// DenyBuilderCompute / DenyComputeStorage (the 403 lines the builder logs
// when the Cloud Build or Compute Engine service account lacks roles),
// DenySnapshots (a 403 naming compute.snapshots.create), CorruptObjects
// (image downloads served with one byte flipped, the CRC32C in the
// metadata still the true one), PartSize (composite objects).
//
// Inspection: Leftovers lists snapshots, images, unattached disks, builds
// still running and every object in the spec's buckets; Builds, Snapshot
// and Stats (requests by method, and objects.compose for each compose the
// builder made) tell what was asked.
package gcpfake
