// Command srs-runc is an OCI runtime that fits a container's requests to what this
// machine can grant, then hands over to runc.
//
// Some sandboxes (Firecracker VMs, nested containers) run with a reduced capability
// bounding set and hard rlimits below the values container engines ask for. runc then
// refuses a privileged container ("unable to apply caps: operation not permitted")
// and any container whose RLIMIT_NOFILE exceeds the hard limit. kind nodes and
// privileged pods such as kube-proxy need exactly those containers. This wrapper
// edits the OCI spec the engine wrote — drop capabilities outside the current bounding
// set, clamp rlimits to the current hard limits — and execs runc with the original
// arguments; without CAP_SYS_RESOURCE it also keeps oom_score_adj from going below the
// inherited value. On a machine that can grant everything it changes nothing.
//
// Register it with dockerd (--add-runtime srs-runc=/path --default-runtime srs-runc)
// and with containerd's CRI runc options (BinaryName).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capabilityBits maps the OCI capability names to their Linux bit numbers.
var capabilityBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// rlimitResources maps OCI rlimit names to the resource numbers getrlimit takes.
var rlimitResources = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

func boundingSet() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "CapBnd:") {
			return strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:")), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapBnd line in /proc/self/status")
}

// currentOOMScoreAdj is this process's oom_score_adj, inherited from the engine.
func currentOOMScoreAdj() (int, bool) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, false
	}
	value, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return value, err == nil
}

// fitProcess edits one OCI "process" object in place; it reports whether anything changed.
func fitProcess(process map[string]any, bounding uint64) bool {
	changed := false
	// Lowering oom_score_adj below the inherited value needs CAP_SYS_RESOURCE; without it
	// runc's init dies with "failed to update /proc/self/oom_score_adj: Permission denied".
	if adj, ok := process["oomScoreAdj"].(float64); ok && bounding&(1<<capabilityBits["CAP_SYS_RESOURCE"]) == 0 {
		if current, known := currentOOMScoreAdj(); known && int(adj) < current {
			process["oomScoreAdj"] = current
			changed = true
		}
	}
	if caps, ok := process["capabilities"].(map[string]any); ok {
		for set, value := range caps {
			names, ok := value.([]any)
			if !ok {
				continue
			}
			kept := make([]any, 0, len(names))
			for _, name := range names {
				bit, known := capabilityBits[fmt.Sprint(name)]
				if known && bounding&(1<<bit) == 0 {
					changed = true
					continue
				}
				kept = append(kept, name)
			}
			caps[set] = kept
		}
	}
	if limits, ok := process["rlimits"].([]any); ok {
		for _, item := range limits {
			limit, ok := item.(map[string]any)
			if !ok {
				continue
			}
			resource, known := rlimitResources[fmt.Sprint(limit["type"])]
			if !known {
				continue
			}
			var current syscall.Rlimit
			if syscall.Getrlimit(resource, &current) != nil {
				continue
			}
			for _, key := range []string{"hard", "soft"} {
				if value, ok := limit[key].(float64); ok && uint64(value) > current.Max {
					limit[key] = current.Max
					changed = true
				}
			}
		}
	}
	return changed
}

// fitFile rewrites a JSON file holding either a whole OCI spec or a bare process.
func fitFile(path string, isProcess bool, bounding uint64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return err
	}
	process := doc
	if !isProcess {
		inner, ok := doc["process"].(map[string]any)
		if !ok {
			return nil
		}
		process = inner
	}
	if !fitProcess(process, bounding) {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

// optionValue finds "--name value", "--name=value" or "-short value" in args.
func optionValue(args []string, long, short string) string {
	for i, arg := range args {
		if arg == long || arg == short {
			if i+1 < len(args) {
				return args[i+1]
			}
		}
		if strings.HasPrefix(arg, long+"=") {
			return strings.TrimPrefix(arg, long+"=")
		}
	}
	return ""
}

func subcommand(args []string) (string, int) {
	// Global options that take a value; everything else starting with "-" is a flag.
	valued := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if valued[arg] {
			i++
			continue
		}
		if strings.HasPrefix(arg, "-") {
			continue
		}
		return arg, i
	}
	return "", -1
}

func realRuntime() (string, error) {
	if path := os.Getenv("SRS_RUNC"); path != "" {
		return path, nil
	}
	self, _ := os.Executable()
	for _, candidate := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"} {
		if resolved, _ := filepath.EvalSymlinks(candidate); resolved != "" && resolved != self {
			if _, err := os.Stat(candidate); err == nil {
				return candidate, nil
			}
		}
	}
	return exec.LookPath("runc")
}

func main() {
	args := os.Args[1:]
	if bounding, err := boundingSet(); err == nil {
		command, at := subcommand(args)
		rest := []string{}
		if at >= 0 {
			rest = args[at+1:]
		}
		var fitErr error
		switch command {
		case "create", "run":
			bundle := optionValue(rest, "--bundle", "-b")
			if bundle == "" {
				bundle = "."
			}
			fitErr = fitFile(filepath.Join(bundle, "config.json"), false, bounding)
		case "exec":
			if process := optionValue(rest, "--process", "-p"); process != "" {
				fitErr = fitFile(process, true, bounding)
			}
		}
		if fitErr != nil {
			fmt.Fprintf(os.Stderr, "srs-runc: could not fit the OCI spec (%v); passing it to runc unchanged\n", fitErr)
		}
	}
	runtime, err := realRuntime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "srs-runc: runc not found:", err)
		os.Exit(127)
	}
	if err := syscall.Exec(runtime, append([]string{runtime}, args...), os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "srs-runc: exec", runtime, "failed:", err)
		os.Exit(126)
	}
}
