package console

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// Every call end internal/errs defines (each EndReason{code, subcode, …}
// literal in end.go, and RemoteFailed's subcode) has a plain-words
// explanation of its own, not only its code's.
func TestExplainCoversEveryEndReason(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../errs/end.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		lit, ok := node.(*ast.CompositeLit)
		if !ok || len(lit.Elts) < 2 {
			return true
		}
		if id, ok := lit.Type.(*ast.Ident); !ok || id.Name != "EndReason" {
			return true
		}
		code, subcode := intLit(lit.Elts[0]), intLit(lit.Elts[1])
		if subcode < 0 {
			return true // RemoteFailed's: its code is the SIP status
		}
		n++
		if code < 0 {
			code = 486 // RemoteFailed: any status
		}
		if got := Explain(code, subcode); strings.Contains(got, "no explanation") {
			t.Errorf("%d/%d: %q", code, subcode, got)
		}
		return true
	})
	if n < 20 {
		t.Fatalf("found %d end reasons in end.go: has it changed shape?", n)
	}
}

// intLit is the value of an integer literal, -1 for anything else.
func intLit(e ast.Expr) int {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.INT {
		return -1
	}
	v, _ := strconv.Atoi(b.Value)
	return v
}
