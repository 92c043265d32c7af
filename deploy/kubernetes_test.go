package deploy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	k8sjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

const k8sDir = "kubernetes"

// kustomization is the part of kustomize's Kustomization this deployment
// uses; decoding is strict, so a field outside it fails the test rather
// than being ignored.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// manifests are the objects of the kustomization, decoded strictly into the
// Kubernetes API types, plus the example Secret it expects.
type manifests struct {
	k          kustomization
	namespace  *corev1.Namespace
	account    *corev1.ServiceAccount
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	pvcs       map[string]*corev1.PersistentVolumeClaim
	secret     *corev1.Secret               // secret.example.yaml
	configMaps map[string]map[string]string // generated: name -> file name -> content
}

// decodeStrict decodes one YAML document into obj as the API server
// decodes a request: field names case-sensitive (encoding/json alone would
// take readOnlyRootFileSystem for readOnlyRootFilesystem), unknown and
// duplicate fields refused.
func decodeStrict(t testing.TB, file string, doc []byte, obj any) {
	t.Helper()
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	strict, err := k8sjson.UnmarshalStrict(js, obj)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, e := range strict {
		t.Errorf("%s: %v", file, e)
	}
}

// documents splits a YAML file into its documents.
func documents(t testing.TB, file string) [][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs [][]byte
	rd := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

func loadManifests(t testing.TB) *manifests {
	t.Helper()
	m := &manifests{pvcs: map[string]*corev1.PersistentVolumeClaim{}, configMaps: map[string]map[string]string{}}
	kpath := filepath.Join(k8sDir, "kustomization.yaml")
	kdata, err := os.ReadFile(kpath)
	if err != nil {
		t.Fatal(err)
	}
	decodeStrict(t, kpath, kdata, &m.k)
	if m.k.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.k.Kind != "Kustomization" {
		t.Fatalf("%s: %s %s", kpath, m.k.APIVersion, m.k.Kind)
	}
	load := func(file string) {
		for _, doc := range documents(t, file) {
			var tm metav1.TypeMeta
			if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				m.namespace = &corev1.Namespace{}
				obj = m.namespace
			case "v1 ServiceAccount":
				m.account = &corev1.ServiceAccount{}
				obj = m.account
			case "apps/v1 Deployment":
				m.deployment = &appsv1.Deployment{}
				obj = m.deployment
			case "v1 Service":
				m.service = &corev1.Service{}
				obj = m.service
			case "policy/v1 PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				obj = m.pdb
			case "v1 PersistentVolumeClaim":
				pvc := &corev1.PersistentVolumeClaim{}
				decodeStrict(t, file, doc, pvc)
				m.pvcs[pvc.Name] = pvc
				continue
			case "v1 Secret":
				m.secret = &corev1.Secret{}
				obj = m.secret
			default:
				t.Fatalf("%s: unexpected %s %s (this test decodes each kind into its API type)", file, tm.APIVersion, tm.Kind)
			}
			decodeStrict(t, file, doc, obj)
		}
	}
	for _, res := range m.k.Resources {
		load(filepath.Join(k8sDir, res))
	}
	for _, g := range m.k.ConfigMapGenerator {
		files := map[string]string{}
		for _, f := range g.Files {
			b, err := os.ReadFile(filepath.Join(k8sDir, f))
			if err != nil {
				t.Fatalf("configMapGenerator %s: %v", g.Name, err)
			}
			files[path.Base(f)] = string(b)
		}
		m.configMaps[g.Name] = files
	}
	load(filepath.Join(k8sDir, "secret.example.yaml"))
	for what, v := range map[string]any{"Namespace": m.namespace, "ServiceAccount": m.account, "Deployment": m.deployment, "Service": m.service, "PodDisruptionBudget": m.pdb, "Secret (example)": m.secret} {
		if isNil(v) {
			t.Fatalf("kubernetes/: no %s", what)
		}
	}
	return m
}

func replicasString(r *int32) string {
	if r == nil {
		return "unset"
	}
	return strconv.Itoa(int(*r))
}

func isNil(v any) bool {
	switch x := v.(type) {
	case *corev1.Namespace:
		return x == nil
	case *corev1.ServiceAccount:
		return x == nil
	case *appsv1.Deployment:
		return x == nil
	case *corev1.Service:
		return x == nil
	case *policyv1.PodDisruptionBudget:
		return x == nil
	case *corev1.Secret:
		return x == nil
	}
	return v == nil
}

// daemonConfig is the hypervisord.yaml of the ConfigMap, with where the
// container finds it.
type daemonConfig struct {
	mountPath string // directory the ConfigMap is mounted at
	file      string // its key
	text      string
	doc       yaml.Node
}

func (c *daemonConfig) scalar(t testing.TB, keys ...string) string {
	t.Helper()
	n := c.doc.Content[0]
	for _, k := range keys {
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return ""
		}
		n = next
	}
	return n.Value
}

// fileRefs returns the paths of every {file: PATH} secret reference.
func (c *daemonConfig) fileRefs() []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode && len(n.Content) == 2 && n.Content[0].Value == "file" {
			out = append(out, n.Content[1].Value)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&c.doc)
	return out
}

func container(t testing.TB, m *manifests) *corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("deployment: %d containers; want 1", len(cs))
	}
	return &cs[0]
}

func mountOf(c *corev1.Container, volume string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// mountAt returns the volume mounted at p, the deepest mount containing it.
func mountAt(c *corev1.Container, pod *corev1.PodSpec, p string) (*corev1.VolumeMount, *corev1.Volume) {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if (p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/")) && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
			best = vm
		}
	}
	if best == nil {
		return nil, nil
	}
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == best.Name {
			return best, &pod.Volumes[i]
		}
	}
	return best, nil
}

// configOf finds the ConfigMap mounted at the image's HYPERSDK_CONFIG.
func configOf(t testing.TB, m *manifests, imageEnv map[string]string) *daemonConfig {
	t.Helper()
	c := container(t, m)
	cfgPath := imageEnv["HYPERSDK_CONFIG"]
	for _, e := range c.Env {
		if e.Name == "HYPERSDK_CONFIG" {
			cfgPath = e.Value
		}
	}
	vm, vol := mountAt(c, &m.deployment.Spec.Template.Spec, cfgPath)
	if vol == nil || vol.ConfigMap == nil {
		t.Fatalf("deployment: no ConfigMap volume is mounted at the configuration file %s", cfgPath)
	}
	files, ok := m.configMaps[vol.ConfigMap.Name]
	if !ok {
		t.Fatalf("deployment: volume %s names ConfigMap %s, which the kustomization does not generate", vol.Name, vol.ConfigMap.Name)
	}
	key := strings.TrimPrefix(cfgPath, strings.TrimSuffix(vm.MountPath, "/")+"/")
	text, ok := files[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s (the configuration file %s)", vol.ConfigMap.Name, key, cfgPath)
	}
	dc := &daemonConfig{mountPath: vm.MountPath, file: key, text: text}
	if err := yaml.Unmarshal([]byte(text), &dc.doc); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return dc
}

// The manifests decode strictly into the Kubernetes API types and hang
// together: with each other (selectors, names, keys, ports), with the image
// (user, configuration path, data and temporary directories) and with the
// daemon's configuration (listen port, secret files, export directory).
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	d := parseDockerfile(t)
	imageEnv := stageEnv(d.final())
	dep := m.deployment
	pod := &dep.Spec.Template.Spec
	c := container(t, m)
	cfg := configOf(t, m, imageEnv)

	if m.k.Namespace == "" || m.namespace.Name != m.k.Namespace || m.secret.Namespace != m.k.Namespace {
		t.Errorf("namespaces: kustomization %q, Namespace %q, example Secret %q", m.k.Namespace, m.namespace.Name, m.secret.Namespace)
	}
	if m.namespace.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace: pod security %q; the pods meet restricted, so enforce it", m.namespace.Labels["pod-security.kubernetes.io/enforce"])
	}

	// Three replicas, selected by the Deployment, the Service and the PDB.
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("deployment: replicas %s; want 3", replicasString(dep.Spec.Replicas))
	}
	podLabels := labels.Set(dep.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("deployment: selector %v does not match the pod labels %v (%v)", dep.Spec.Selector, podLabels, err)
	}
	if !labels.SelectorFromSet(m.service.Spec.Selector).Matches(podLabels) || len(m.service.Spec.Selector) == 0 {
		t.Errorf("service: selector %v does not match the pod labels %v", m.service.Spec.Selector, podLabels)
	}
	psel, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector)
	if err != nil || psel.Empty() || !psel.Matches(podLabels) {
		t.Errorf("pdb: selector %v does not match the pod labels %v (%v)", m.pdb.Spec.Selector, podLabels, err)
	}
	switch {
	case m.pdb.Spec.MaxUnavailable != nil:
		if v := m.pdb.Spec.MaxUnavailable.IntValue(); v < 1 || v > 1 {
			t.Errorf("pdb: maxUnavailable %s; want 1 of 3", m.pdb.Spec.MaxUnavailable.String())
		}
	case m.pdb.Spec.MinAvailable != nil:
		if v := m.pdb.Spec.MinAvailable.IntValue(); v != 2 {
			t.Errorf("pdb: minAvailable %s; want 2 of 3", m.pdb.Spec.MinAvailable.String())
		}
	default:
		t.Error("pdb: neither maxUnavailable nor minAvailable")
	}

	// Spread: over nodes and zones, by the pod labels.
	topo := map[string]bool{}
	for _, tsc := range pod.TopologySpreadConstraints {
		s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || !s.Matches(podLabels) {
			t.Errorf("topologySpreadConstraints %s: selector does not match the pod labels", tsc.TopologyKey)
		}
		topo[tsc.TopologyKey] = true
	}
	if !topo["kubernetes.io/hostname"] || !topo["topology.kubernetes.io/zone"] {
		t.Errorf("topologySpreadConstraints over %v; want hostname and zone", topo)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil || len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Error("deployment: no pod anti-affinity")
	} else {
		for _, w := range pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if s, err := metav1.LabelSelectorAsSelector(w.PodAffinityTerm.LabelSelector); err != nil || !s.Matches(podLabels) {
				t.Errorf("podAntiAffinity: selector does not match the pod labels")
			}
		}
	}

	// The image: the kustomization's images entry, the Dockerfile's user.
	if len(m.k.Images) != 1 || m.k.Images[0].Name != c.Image {
		t.Errorf("container image %q is not the kustomization's images[0] %+v", c.Image, m.k.Images)
	}
	uid, gid := parseUser(t, commandsOf[*instructions.UserCommand](d.final())[0].User)
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != int64(uid) ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != int64(gid) || psc.FSGroup == nil {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, runAsUser %d and runAsGroup %d (the image's USER), fsGroup", psc, uid, gid)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: want seccompProfile RuntimeDefault")
	}
	csc := c.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want readOnlyRootFilesystem, no privilege escalation, drop ALL capabilities", csc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken || pod.ServiceAccountName != m.account.Name {
		t.Errorf("pod: service account %q (have %q) without an API token", pod.ServiceAccountName, m.account.Name)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("container: no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("container: no memory limit")
	}

	// The port: the configuration's api.listen, named http, used by the
	// Service, the probes and the Prometheus annotation.
	_, listenPort, err := net.SplitHostPort(cfg.scalar(t, "api", "listen"))
	if err != nil {
		t.Fatalf("%s: api.listen: %v", cfg.file, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.scalar(t, "api", "listen")); host == "127.0.0.1" || host == "localhost" {
		t.Errorf("%s: api.listen %s is loopback: unreachable from the kubelet and the Service", cfg.file, cfg.scalar(t, "api", "listen"))
	}
	port, _ := strconv.Atoi(listenPort)
	var httpPort corev1.ContainerPort
	for _, p := range c.Ports {
		if p.Name == "http" {
			httpPort = p
		}
	}
	if int(httpPort.ContainerPort) != port {
		t.Errorf("container port http %d; api.listen port %d", httpPort.ContainerPort, port)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service: ports %+v; want one with targetPort http", m.service.Spec.Ports)
	}
	ann := dep.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != listenPort || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v: want prometheus.io/scrape true, port %s, path /metrics", ann, listenPort)
	}
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		p := want.probe
		if p == nil || p.HTTPGet == nil {
			t.Errorf("container: no %s httpGet probe", name)
			continue
		}
		if p.HTTPGet.Path != want.path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe: GET %s on %s; want %s on http", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want.path)
		}
	}

	// Volumes: every mount has its volume; the data directory, TMPDIR and
	// the export directory are writable volumes (the root is read-only).
	vols := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		vols[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	for _, vm := range c.VolumeMounts {
		if vols[vm.Name] == nil {
			t.Errorf("volumeMount %s: no such volume", vm.Name)
		}
	}
	for what, dir := range map[string]string{"data directory": imageEnv["HYPERSDK_DATA_DIR"], "TMPDIR": imageEnv["TMPDIR"]} {
		if vm, vol := mountAt(c, pod, dir); vol == nil || vm.MountPath != dir || vm.ReadOnly || vol.EmptyDir == nil {
			t.Errorf("%s %s: want a writable emptyDir mounted there", what, dir)
		}
	}
	exports := cfg.scalar(t, "export", "output_dir")
	if vm, vol := mountAt(c, pod, exports); vol == nil || vm.ReadOnly || vol.PersistentVolumeClaim == nil {
		t.Errorf("export.output_dir %q: want a writable PersistentVolumeClaim mounted there", exports)
	} else if pvc := m.pvcs[vol.PersistentVolumeClaim.ClaimName]; pvc == nil {
		t.Errorf("volume %s: claim %s is not in the kustomization", vol.Name, vol.PersistentVolumeClaim.ClaimName)
	} else if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteMany {
		t.Errorf("claim %s: access modes %v; the replicas share it: ReadWriteMany", pvc.Name, pvc.Spec.AccessModes)
	}

	// Secrets: every {file: …} of the configuration is a key of a mounted
	// Secret, every secretKeyRef names a key, and the example Secret has
	// them all.
	exampleKeys := map[string]bool{}
	for k := range m.secret.StringData {
		exampleKeys[k] = true
	}
	refs := cfg.fileRefs()
	if len(refs) < 2 {
		t.Errorf("%s: %d secret file references; want the database URL and the tokens", cfg.file, len(refs))
	}
	for _, ref := range refs {
		vm, vol := mountAt(c, pod, ref)
		if vol == nil || vol.Secret == nil || !vm.ReadOnly {
			t.Errorf("%s: {file: %s} is not in a read-only Secret volume", cfg.file, ref)
			continue
		}
		if vol.Secret.SecretName != m.secret.Name {
			t.Errorf("volume %s: Secret %s; the example is %s", vol.Name, vol.Secret.SecretName, m.secret.Name)
		}
		if key := strings.TrimPrefix(ref, strings.TrimSuffix(vm.MountPath, "/")+"/"); !exampleKeys[key] {
			t.Errorf("%s: {file: %s}: key %s is not in the example Secret %s", cfg.file, ref, key, m.secret.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if e.ValueFrom.SecretKeyRef.Name != m.secret.Name || !exampleKeys[e.ValueFrom.SecretKeyRef.Key] {
				t.Errorf("env %s: secret %s key %s is not in the example Secret", e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			if files, ok := m.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]; !ok || files[e.ValueFrom.ConfigMapKeyRef.Key] == "" {
				t.Errorf("env %s: ConfigMap %s key %s does not exist", e.Name, e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
			}
		}
	}
	if cfg.scalar(t, "database", "url") != "" || len(cfg.fileRefs()) == 0 {
		t.Errorf("%s: database.url must be a secret reference, not a literal", cfg.file)
	}
}

// podRoot lays out the Deployment's container as the kubelet would: the
// image, then each volume at its mount point (ConfigMap and Secret files
// root-owned with the pod's fsGroup, emptyDirs and the claim writable by
// it), the pod's user and fsGroup, and the container's environment over the
// image's. secret holds the Secret's values.
func podRoot(t testing.TB, m *manifests, secret map[string]string) *fsRoot {
	t.Helper()
	r := imageRoot(t)
	pod := &m.deployment.Spec.Template.Spec
	c := container(t, m)
	sc := pod.SecurityContext
	r.uid, r.gid = int(*sc.RunAsUser), int(*sc.RunAsGroup)
	fsGroup := int(*sc.FSGroup)
	r.groups = []uint32{uint32(fsGroup)}
	r.writable = nil
	for _, vm := range c.VolumeMounts {
		_, vol := mountAt(c, pod, vm.MountPath)
		if err := os.RemoveAll(r.path(vm.MountPath)); err != nil {
			t.Fatal(err)
		}
		switch {
		case vol.ConfigMap != nil:
			r.mkdir(vm.MountPath, 0o755, 0, fsGroup)
			for name, text := range m.configMaps[vol.ConfigMap.Name] {
				r.writeFile(path.Join(vm.MountPath, name), []byte(text), 0o644, 0, fsGroup)
			}
		case vol.Secret != nil:
			mode := fs.FileMode(0o644)
			if vol.Secret.DefaultMode != nil {
				mode = fs.FileMode(*vol.Secret.DefaultMode)
			}
			r.mkdir(vm.MountPath, 0o755, 0, fsGroup)
			for k, v := range secret {
				r.writeFile(path.Join(vm.MountPath, k), []byte(v), mode, 0, fsGroup)
			}
		case vol.EmptyDir != nil:
			r.mkdir(vm.MountPath, fs.ModeSetgid|0o777, 0, fsGroup)
			r.writable = append(r.writable, vm.MountPath)
		case vol.PersistentVolumeClaim != nil:
			r.mkdir(vm.MountPath, fs.ModeSetgid|0o775, 0, fsGroup)
			r.writable = append(r.writable, vm.MountPath)
		default:
			t.Fatalf("volume %s: a kind this test does not lay out", vol.Name)
		}
	}
	env := map[string]string{}
	for _, kv := range r.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = "127.0.0.1"
		case e.ValueFrom.ResourceFieldRef != nil:
			q, ok := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(e.ValueFrom.ResourceFieldRef.Resource, "limits."))]
			if !ok {
				t.Fatalf("env %s: resource %s has no limit", e.Name, e.ValueFrom.ResourceFieldRef.Resource)
			}
			env[e.Name] = strconv.FormatInt(q.Value(), 10)
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secret[e.ValueFrom.SecretKeyRef.Key]
		default:
			t.Fatalf("env %s: a source this test does not resolve", e.Name)
		}
	}
	r.env = r.env[:0]
	for k, v := range env {
		r.env = append(r.env, k+"="+v)
	}
	return r
}

func randomToken(t testing.TB) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// The Deployment's container, laid out and configured as the kubelet would
// (ConfigMap, Secret, emptyDirs, claim, user, fsGroup, environment) on a
// read-only root, runs on PostgreSQL: its configuration passes the daemon's
// own --check-config and selects PostgreSQL; the daemon starts; every probe
// path and the Prometheus path answer 200 (readiness meaning the database
// answers); the tokens from the Secret authenticate; and nothing outside the
// volumes changes. With the example Secret's placeholders the daemon
// refuses to start.
func TestKubernetesPodRunsOnPostgres(t *testing.T) {
	m := loadManifests(t)
	c := container(t, m)
	d := parseDockerfile(t)
	entry := commandsOf[*instructions.EntrypointCommand](d.final())[0].CmdLine
	argv := append(append(append([]string(nil), entry...), c.Command...), c.Args...)
	secret := map[string]string{}
	for k := range m.secret.StringData {
		secret[k] = randomToken(t)
	}
	// The test server trusts local connections, so a password in the URL
	// is never checked: it is there to prove it is never printed.
	dbURL, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	dbPassword := randomToken(t)
	dbURL.User = url.UserPassword(dbURL.User.Username(), dbPassword)
	secret["database-url"] = dbURL.String()
	admin, viewer := secret["admin-token"], secret["viewer-token"]
	if admin == "" || viewer == "" {
		t.Fatal("the example Secret has no admin-token or viewer-token")
	}

	r := podRoot(t, m, secret)
	addr := freeListen(t)
	listen := "HYPERSDK_API_LISTEN=" + addr
	code, out := r.run(append(append([]string(nil), argv...), "--check-config"), listen)
	if code != 0 || !strings.Contains(out, "database postgres") {
		t.Fatalf("--check-config in the pod: exit %d: %s", code, out)
	}
	if strings.Contains(out, dbPassword) {
		t.Errorf("--check-config printed the database password")
	}

	dataDir := ""
	for _, kv := range r.env {
		if v, ok := strings.CutPrefix(kv, "HYPERSDK_DATA_DIR="); ok {
			dataDir = v
		}
	}
	before := r.snapshot()
	dmn := r.start(dataDir, argv, listen)
	get := func(p, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	for name, p := range probes {
		// Readiness may trail start-up by the first database round trip.
		deadline := time.Now().Add(time.Minute)
		for {
			code, body := get(p.HTTPGet.Path, "")
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s probe GET %s: %d %s\n%s", name, p.HTTPGet.Path, code, body, dmn.out.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if code, body := get(m.deployment.Spec.Template.Annotations["prometheus.io/path"], ""); code != http.StatusOK || !strings.Contains(body, "hypersdk_jobs") {
		t.Errorf("Prometheus scrape: %d, %d bytes", code, len(body))
	}
	if code, body := get("/api/v1/status", admin); code != http.StatusOK || !strings.Contains(body, `"database":"postgres`) {
		t.Errorf("status with the admin token: %d %s", code, body)
	}
	if code, _ := get("/api/v1/status", viewer); code != http.StatusOK {
		t.Errorf("status with the viewer token: %d", code)
	}
	if code, _ := get("/api/v1/status", ""); code != http.StatusUnauthorized {
		t.Errorf("status without a token: %d; want 401", code)
	}
	dmn.stop(t)
	r.unchangedSince(before)

	// The example Secret as shipped: refused, naming the field.
	example := podRoot(t, m, m.secret.StringData)
	code, out = example.run(append(append([]string(nil), argv...), "--check-config"), listen)
	if code != 2 || !strings.Contains(out, "api.tokens[0].token: must be at least 16 characters") {
		t.Errorf("--check-config with the example Secret: exit %d: %s", code, out)
	}
}
