// lua-health runs an Argo CD health script as Argo CD does: the object, decoded from the
// JSON on standard input, as the global `obj`; the script's returned table printed as
// JSON ({"status": ..., "message": ...}). Built by hack/go-tools.sh against gopher-lua,
// the Lua runtime Argo CD embeds.
//
// Usage: lua-health SCRIPT... < object.json   (the scripts are run as one, in order)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.NewTable()
		for k, item := range v {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "lua-health: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: lua-health SCRIPT... < object.json")
	}
	var parts []string
	for _, path := range os.Args[1:] {
		text, err := os.ReadFile(path)
		if err != nil {
			fail("%v", err)
		}
		parts = append(parts, string(text))
	}
	var obj interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&obj); err != nil {
		fail("the object: %v", err)
	}
	// As Argo CD does: no io, os or package libraries, only what a health check needs.
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenTable, lua.OpenString, lua.OpenMath} {
		l.Push(l.NewFunction(open))
		l.Call(0, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(strings.Join(parts, "\n")); err != nil {
		fail("the script: %v", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		fail("the script returned no table")
	}
	out := map[string]string{}
	ret.ForEach(func(k, v lua.LValue) { out[k.String()] = v.String() })
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}
