package sqlctx

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
)

// Analyzer reports calls and method values of database/sql methods that
// take no context but have a sibling that does.
var Analyzer = &analysis.Analyzer{
	Name:     "sqlctx",
	Doc:      "report database/sql calls without a context (db.Query, tx.Exec, db.Begin, ...): tenantsql routes each call by the tenant in its context, so they fail with ErrNoTenant",
	URL:      "https://pkg.go.dev/github.com/tenantsql/tenantsql/analysis/sqlctx",
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

// receivers are the database/sql types whose operations tenantsql routes.
// (*sql.Conn has only context methods today; it is listed so that a future
// one without is reported.)
var receivers = map[string]bool{"DB": true, "Tx": true, "Stmt": true, "Conn": true}

// irregular are the siblings not named M + "Context".
var irregular = map[string]string{"Begin": "BeginTx"}

func run(pass *analysis.Pass) (any, error) {
	insp := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)

	// Calls are visited before their selector: remember which selectors
	// are called, so that the rest are reported as method values.
	called := make(map[*ast.SelectorExpr]*ast.CallExpr)
	insp.Preorder([]ast.Node{(*ast.CallExpr)(nil), (*ast.SelectorExpr)(nil)}, func(n ast.Node) {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := ast.Unparen(n.Fun).(*ast.SelectorExpr); ok {
				called[sel] = n
			}
		case *ast.SelectorExpr:
			check(pass, n, called[n])
		}
	})
	return nil, nil
}

// check reports sel if it selects a database/sql method without a context;
// call is the call of sel, or nil for a method value or expression.
func check(pass *analysis.Pass, sel *ast.SelectorExpr, call *ast.CallExpr) {
	selection := pass.TypesInfo.Selections[sel]
	if selection == nil || (selection.Kind() != types.MethodVal && selection.Kind() != types.MethodExpr) {
		return
	}
	fn, ok := selection.Obj().(*types.Func)
	if !ok || fn.Pkg() == nil || fn.Pkg().Path() != "database/sql" {
		return
	}
	recv := receiverName(fn)
	if !receivers[recv] {
		return
	}
	sibling := siblingOf(fn)
	if sibling == nil {
		return
	}

	name := types.ExprString(sel)
	if len(name) > 40 {
		name = fmt.Sprintf("(*sql.%s).%s", recv, fn.Name())
	}
	msg := fmt.Sprintf("%s has no context: tenantsql routes by the tenant in the context; use %s with ctx from tenantctx.WithTenant",
		name, usage(fn, sibling))
	if fn.Name() == "Ping" {
		// The one method the driver serves without a tenant, for start-up
		// code: say what it does, so that it is kept on purpose.
		msg = fmt.Sprintf("%s has no context: under tenantsql it checks only the tenant store; use PingContext(ctx) with ctx from tenantctx.WithTenant to ping a tenant's database, or PingContext(context.Background()) to check the store",
			name)
	}
	d := analysis.Diagnostic{Pos: sel.Sel.Pos(), End: sel.End(), Message: msg}
	if call != nil && selection.Kind() == types.MethodVal {
		if fix, ok := suggestFix(pass, sel, call, fn, sibling); ok {
			d.SuggestedFixes = []analysis.SuggestedFix{fix}
		}
	}
	pass.Report(d)
}

// receiverName is the name of fn's receiver type, "" for a function.
func receiverName(fn *types.Func) string {
	recv := fn.Signature().Recv()
	if recv == nil {
		return ""
	}
	t := recv.Type()
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	if named, ok := t.(*types.Named); ok {
		return named.Obj().Name()
	}
	return ""
}

// siblingOf returns the method of fn's receiver that does what fn does
// with a context (QueryContext for Query), or nil if there is none or fn
// already takes one.
func siblingOf(fn *types.Func) *types.Func {
	if takesContext(fn) {
		return nil
	}
	name, ok := irregular[fn.Name()]
	if !ok {
		name = fn.Name() + "Context"
	}
	obj, _, _ := types.LookupFieldOrMethod(fn.Signature().Recv().Type(), true, fn.Pkg(), name)
	sibling, ok := obj.(*types.Func)
	if !ok || !takesContext(sibling) {
		return nil
	}
	return sibling
}

// takesContext reports whether fn's first parameter is a context.Context.
func takesContext(fn *types.Func) bool {
	params := fn.Signature().Params()
	return params.Len() > 0 && isContext(params.At(0).Type())
}

func isContext(t types.Type) bool {
	named, ok := types.Unalias(t).(*types.Named)
	return ok && named.Obj().Pkg() != nil && named.Obj().Pkg().Path() == "context" && named.Obj().Name() == "Context"
}

// usage shows how to call sibling in place of fn: "QueryContext(ctx, ...)",
// "PingContext(ctx)", "BeginTx(ctx, nil)".
func usage(fn, sibling *types.Func) string {
	switch {
	case fn.Name() == "Begin":
		return sibling.Name() + "(ctx, nil)"
	case fn.Signature().Params().Len() == 0:
		return sibling.Name() + "(ctx)"
	default:
		return sibling.Name() + "(ctx, ...)"
	}
}

// suggestFix rewrites call to use sibling with the ctx in scope. It offers
// nothing unless the rewrite certainly compiles to the database/sql method
// with a context: a variable ctx of type context.Context is in scope at
// the call, and the sibling name on the receiver expression resolves to
// database/sql's method (not to a method of the user's type that
// shadows a promoted one).
func suggestFix(pass *analysis.Pass, sel *ast.SelectorExpr, call *ast.CallExpr, fn, sibling *types.Func) (analysis.SuggestedFix, bool) {
	if !ctxInScope(pass, call.Pos()) {
		return analysis.SuggestedFix{}, false
	}
	recvType := pass.TypesInfo.TypeOf(sel.X)
	if recvType == nil {
		return analysis.SuggestedFix{}, false
	}
	obj, _, _ := types.LookupFieldOrMethod(recvType, true, pass.Pkg, sibling.Name())
	if obj != sibling {
		return analysis.SuggestedFix{}, false
	}

	args := "ctx"
	switch {
	case fn.Name() == "Begin":
		args = "ctx, nil"
	case len(call.Args) > 0:
		args = "ctx, "
	}
	return analysis.SuggestedFix{
		Message: fmt.Sprintf("Call %s with the ctx in scope", sibling.Name()),
		TextEdits: []analysis.TextEdit{
			{Pos: sel.Sel.Pos(), End: sel.Sel.End(), NewText: []byte(sibling.Name())},
			{Pos: call.Lparen + 1, End: call.Lparen + 1, NewText: []byte(args)},
		},
	}, true
}

// ctxInScope reports whether the identifier ctx, at pos, names a variable
// of type context.Context.
func ctxInScope(pass *analysis.Pass, pos token.Pos) bool {
	scope := pass.Pkg.Scope().Innermost(pos)
	if scope == nil {
		return false
	}
	_, obj := scope.LookupParent("ctx", pos)
	v, ok := obj.(*types.Var)
	return ok && isContext(v.Type())
}
