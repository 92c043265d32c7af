package ps

// The PowerShell this provider runs on the host. Every script is a constant
// made of scriptHead, one body and scriptTail; the only text added at run
// time is the input assignment $b64='<base64>', whose alphabet
// [A-Za-z0-9+/=] cannot leave a single-quoted string. The input is JSON
// (VM ids, names, paths, job ids), decoded inside the script, so a value
// is never parsed as PowerShell whatever it holds. Each script answers one
// line of ConvertTo-Json -Compress: {"ok":true,"result":…} or
// {"ok":false,"error":{"type":…,"message":…,"id":…}}.
//
// Scripts stay small: winrm sends powershell.exe -EncodedCommand with the
// script as base64 UTF-16LE on a command line that Windows caps at 8191
// characters (TestScriptsFitTheCommandLine).

// scriptHead decodes the input into $p and stops on the first error.
const scriptHead = "$ErrorActionPreference='Stop'\n" +
	"try {\n" +
	"$p=[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($b64))|ConvertFrom-Json\n"

// scriptTail answers $r, or the error as a structured object.
const scriptTail = "\n@{ok=$true;result=$r}|ConvertTo-Json -Compress -Depth 8\n" +
	"} catch {\n" +
	"@{ok=$false;error=@{type=$_.Exception.GetType().FullName;message=$_.Exception.Message;id=$_.FullyQualifiedErrorId}}|ConvertTo-Json -Compress\n" +
	"}"

// bodyListVMs lists the VMs (all, or the one with id $p.id) with their
// NICs and hard drives; each drive's VHD with its parent chain.
const bodyListVMs = `$vms=if($p.id){@(Get-VM -Id $p.id)}else{@(Get-VM)}
$r=@(foreach($vm in $vms){
$d=@(foreach($h in @(Get-VMHardDiskDrive -VM $vm)){
$v=Get-VHD -Path $h.Path;$c=@();$q=$v.ParentPath
while($q){$c+=$q;$q=(Get-VHD -Path $q).ParentPath}
@{ct=$h.ControllerType.ToString();cn=$h.ControllerNumber;cl=$h.ControllerLocation;path=$h.Path;format=$v.VhdFormat.ToString();type=$v.VhdType.ToString();size=$v.Size;file=$v.FileSize;chain=$c}})
$n=@(foreach($a in @(Get-VMNetworkAdapter -VM $vm)){@{name=$a.Name;switch=$a.SwitchName;mac=$a.MacAddress}})
@{id=$vm.VMId.ToString();name=$vm.Name;state=$vm.State.ToString();gen=$vm.Generation;cpus=$vm.ProcessorCount;mem=$vm.MemoryStartup;notes=$vm.Notes;disks=$d;nics=$n}})`

// bodyExportVM exports a VM that is off into the staging folder.
const bodyExportVM = `$d=Join-Path $p.staging $p.folder
New-Item -ItemType Directory -Path $d -Force|Out-Null
Export-VM -VM (Get-VM -Id $p.id) -Path $d
$r=@{folder=$d}`

// bodyCheckpoint creates the job's checkpoint of a running VM.
const bodyCheckpoint = `$vm=Get-VM -Id $p.id
Checkpoint-VM -VM $vm -SnapshotName $p.name
$s=Get-VMSnapshot -VM $vm -Name $p.name
$r=@{id=$s.Id.ToString();type=$s.SnapshotType.ToString()}`

// bodyExportCheckpoint exports the job's checkpoint into the staging
// folder: the disks as they were at the checkpoint.
const bodyExportCheckpoint = `$d=Join-Path $p.staging $p.folder
New-Item -ItemType Directory -Path $d -Force|Out-Null
Get-VMSnapshot -VM (Get-VM -Id $p.id) -Name $p.name|Export-VMSnapshot -Path $d
$r=@{folder=$d}`

// bodyStage turns each exported disk into one self-contained dynamic VHDX:
// a differencing disk (.avhdx, or a .vhdx with a parent) is merged with
// its chain by Convert-VHD into a new file beside it; a disk without a
// parent is handed over as it is. $p.files are the base names of the
// VM's drives, in drive order, as Export-VM names the copies. The answer
// is also written to staged.json in the folder, last: a later attempt of
// the job finds the folder complete (bodyStaged) and reuses it.
const bodyStage = `$d=Join-Path $p.staging $p.folder
$all=@(Get-ChildItem -LiteralPath $d -Recurse -File)
$r=@(foreach($f in $p.files){
$m=@($all|Where-Object{$_.Name -eq $f})
if($m.Count -ne 1){throw "staged disk $f found $($m.Count) times"}
$src=$m[0].FullName;$v=Get-VHD -Path $src
if($v.ParentPath){$dst=Join-Path $m[0].DirectoryName ('merged-'+[IO.Path]::GetFileNameWithoutExtension($f)+'.vhdx')
Convert-VHD -Path $src -DestinationPath $dst -VHDType Dynamic;$src=$dst;$v=Get-VHD -Path $dst}
@{path=$src.Substring($d.Length).TrimStart('\');size=$v.Size;file=(Get-Item -LiteralPath $src).Length;format=$v.VhdFormat.ToString()}})
ConvertTo-Json -InputObject $r -Compress -Depth 4|Set-Content -LiteralPath (Join-Path $d 'staged.json') -Encoding UTF8`

// bodyStaged answers what bodyStage wrote for the job, if the folder
// holds it and (for a checkpoint export) the job's checkpoint still
// exists; else an empty list.
const bodyStaged = `$f=Join-Path (Join-Path $p.staging $p.folder) 'staged.json'
$ok=Test-Path -LiteralPath $f
if($ok -and $p.name){$ok=@(Get-VMSnapshot -VM (Get-VM -Id $p.id) -Name $p.name -ErrorAction SilentlyContinue).Count -eq 1}
$r=@(if($ok){Get-Content -LiteralPath $f -Raw|ConvertFrom-Json|ForEach-Object{$_}})`

// bodyRemoveCheckpoint removes the job's checkpoint (Hyper-V merges its
// differencing disks back into the VM's). Nothing to remove is success.
const bodyRemoveCheckpoint = `$s=@(Get-VMSnapshot -VM (Get-VM -Id $p.id) -Name $p.name -ErrorAction SilentlyContinue)
$s|Remove-VMSnapshot
$r=@{removed=$s.Count}`

// bodyRemoveStaging removes one job's staging folder. Nothing to remove is
// success.
const bodyRemoveStaging = `$d=Join-Path $p.staging $p.folder
$e=Test-Path -LiteralPath $d
if($e){Remove-Item -LiteralPath $d -Recurse -Force}
$r=@{removed=$e}`

// bodyListLeftovers lists what exports leave on the host: checkpoints and
// staging folders whose names start with $p.prefix.
const bodyListLeftovers = `$c=@(foreach($s in @(Get-VM|Get-VMSnapshot)){if($s.Name.StartsWith($p.prefix)){@{vm=$s.VMId.ToString();name=$s.Name}}})
$f=@(if(Test-Path -LiteralPath $p.staging){Get-ChildItem -LiteralPath $p.staging -Directory|Where-Object{$_.Name.StartsWith($p.prefix)}|ForEach-Object{$_.Name}})
$r=@{checkpoints=$c;folders=$f}`

// The scripts, whole.
const (
	ListVMs          = scriptHead + bodyListVMs + scriptTail
	ExportVM         = scriptHead + bodyExportVM + scriptTail
	Checkpoint       = scriptHead + bodyCheckpoint + scriptTail
	ExportCheckpoint = scriptHead + bodyExportCheckpoint + scriptTail
	Stage            = scriptHead + bodyStage + scriptTail
	Staged           = scriptHead + bodyStaged + scriptTail
	RemoveCheckpoint = scriptHead + bodyRemoveCheckpoint + scriptTail
	RemoveStaging    = scriptHead + bodyRemoveStaging + scriptTail
	ListLeftovers    = scriptHead + bodyListLeftovers + scriptTail
)

// Names maps each script to a short name (for logs and the test server).
func Names() map[string]string {
	return map[string]string{
		ListVMs: "list-vms", ExportVM: "export-vm", Checkpoint: "checkpoint",
		ExportCheckpoint: "export-checkpoint", Stage: "stage", Staged: "staged",
		RemoveCheckpoint: "remove-checkpoint", RemoveStaging: "remove-staging",
		ListLeftovers: "list-leftovers",
	}
}
