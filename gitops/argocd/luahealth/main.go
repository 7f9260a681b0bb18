// Command luahealth runs Argo CD resource health checks (health.lua) the way Argo CD does:
// the same Lua VM (gopher-lua), the same libraries, the object as the global `obj`, and the
// returned table converted to {status, message} through JSON.
//
//	luahealth test [-libs argocd-cm|built-in] [-script GROUP/KIND=FILE] DIR
//	    runs every case of every health_test.yaml under DIR (Argo CD's
//	    resource_customizations layout); one JSON line per case on stdout, a summary on
//	    stderr, exit status 1 when a case does not match.
//	luahealth eval [-libs argocd-cm|built-in] FILE
//	    reads Kubernetes objects (a stream of JSON documents) on stdin and prints the
//	    health FILE gives each one, one JSON line per object.
//
// -libs argocd-cm (the default) is what a script pasted into argocd-cm gets: base, table
// and package, and os.time/os.date only through require("os") (no global os: Argo CD
// registers its safe os functions into the table module). built-in adds every standard
// library, as Argo CD does for the scripts it ships.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// Health is Argo CD's HealthStatus.
type Health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

type scriptFlags map[string]string

func (s scriptFlags) String() string { return fmt.Sprint(map[string]string(s)) }

func (s scriptFlags) Set(v string) error {
	check, file, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want GROUP/KIND=FILE, got %q", v)
	}
	s[check] = file
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: luahealth test|eval [flags] ARG")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	libs := fs.String("libs", "argocd-cm", "libraries the script gets: argocd-cm or built-in")
	scripts := scriptFlags{}
	fs.Var(scripts, "script", "GROUP/KIND=FILE: run FILE instead of that check's health.lua (repeatable)")
	_ = fs.Parse(os.Args[2:])
	if *libs != "argocd-cm" && *libs != "built-in" || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: luahealth test|eval [-libs argocd-cm|built-in] ARG")
		os.Exit(2)
	}
	openLibs := *libs == "built-in"
	var err error
	switch os.Args[1] {
	case "test":
		var failed int
		failed, err = runTests(fs.Arg(0), scripts, openLibs, *libs)
		if err == nil && failed > 0 {
			os.Exit(1)
		}
	case "eval":
		err = runEval(fs.Arg(0), openLibs)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "luahealth:", err)
		os.Exit(2)
	}
}

// health runs script against obj like Argo CD's VM.ExecuteHealthLua.
func health(script string, obj map[string]any, openLibs bool) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Health{}, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // Argo CD's limit
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Health{}, err
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return Health{}, nil
	case lua.LTTable:
	default:
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return Health{}, err
	}
	var h Health
	if err := json.Unmarshal(raw, &h); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) { // an empty table encodes as []
			return Health{}, nil
		}
		return Health{}, err
	}
	if !validStatus[h.Status] {
		return Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// timeAndDate are gopher-lua's os.time and os.date: the only os functions Argo CD lets a
// script use.
func timeAndDate() map[string]lua.LGFunction {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	scratch.Push(scratch.NewFunction(lua.OpenOs))
	scratch.Push(lua.LString(lua.OsLibName))
	scratch.Call(1, 1)
	osTable := scratch.Get(-1).(*lua.LTable)
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = osTable.RawGetString(name).(*lua.LFunction).GFunction
	}
	return funcs
}

// openSafeOs does what Argo CD's OpenSafeOs does, quirk included: it registers time and
// date into the *table* module, so an argocd-cm script has no global `os`; it reaches
// them through `require("os")`, which safeOsLoader (preloaded as "os") answers.
func openSafeOs(l *lua.LState) int {
	mod := l.RegisterModule(lua.TabLibName, timeAndDate())
	l.Push(mod)
	return 1
}

func safeOsLoader(l *lua.LState) int {
	mod := l.SetFuncs(l.NewTable(), timeAndDate())
	l.Push(mod)
	return 1
}

// toLua converts a decoded JSON/YAML object like Argo CD's decodeValue.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

type testFile struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus Health `json:"healthStatus"`
	} `json:"tests"`
}

// CaseResult is one health_test.yaml case, as printed by `luahealth test`.
type CaseResult struct {
	Check     string `json:"check"`
	InputPath string `json:"inputPath"`
	Libs      string `json:"libs"`
	Want      Health `json:"want"`
	Got       Health `json:"got"`
	Error     string `json:"error,omitempty"`
	Pass      bool   `json:"pass"`
}

func runTests(root string, scripts scriptFlags, openLibs bool, libs string) (int, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "health.lua" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(dirs) == 0 {
		return 0, fmt.Errorf("no health.lua under %s", root)
	}
	sort.Strings(dirs)
	out := json.NewEncoder(os.Stdout)
	total, failed := 0, 0
	for _, dir := range dirs {
		check, _ := filepath.Rel(root, dir)
		check = filepath.ToSlash(check)
		scriptPath := filepath.Join(dir, "health.lua")
		if override, ok := scripts[check]; ok {
			scriptPath = override
		}
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			return 0, err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return 0, err
		}
		var tf testFile
		if err := yaml.Unmarshal(raw, &tf); err != nil {
			return 0, fmt.Errorf("%s/health_test.yaml: %w", dir, err)
		}
		if len(tf.Tests) == 0 {
			return 0, fmt.Errorf("%s/health_test.yaml has no tests", dir)
		}
		for _, tc := range tf.Tests {
			res := CaseResult{Check: check, InputPath: tc.InputPath, Libs: libs, Want: tc.HealthStatus}
			obj, err := readObject(filepath.Join(dir, tc.InputPath))
			if err == nil {
				res.Got, err = health(string(script), obj, openLibs)
			}
			if err != nil {
				res.Error = err.Error()
			}
			res.Pass = err == nil && res.Got == res.Want
			total++
			if !res.Pass {
				failed++
				fmt.Fprintf(os.Stderr, "FAIL %s %s (%s): want %+v, got %+v %s\n", check, tc.InputPath, libs, res.Want, res.Got, res.Error)
			}
			if err := out.Encode(res); err != nil {
				return 0, err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "luahealth: %d of %d cases pass (%s libraries)\n", total-failed, total, libs)
	return failed, nil
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func runEval(scriptPath string, openLibs bool) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	in := json.NewDecoder(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for {
		var obj map[string]any
		if err := in.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		h, err := health(string(script), obj, openLibs)
		result := map[string]any{"status": h.Status, "message": h.Message}
		if err != nil {
			result = map[string]any{"error": err.Error()}
		}
		if err := out.Encode(result); err != nil {
			return err
		}
	}
}
