package twofactor

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// auditDoc is what docs/audit-log.md says: each event's messages and
// fields, and the fields table.
type auditDoc struct {
	events map[string]docEvent
	fields map[string]bool
}

type docEvent struct {
	// messages are the messages the row names in backticks; none when
	// the message varies.
	messages []string
	fields   map[string]bool
}

var backticked = regexp.MustCompile("`([^`]+)`")

func readAuditDoc(t *testing.T) auditDoc {
	t.Helper()
	text, err := os.ReadFile("docs/audit-log.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := auditDoc{events: map[string]docEvent{}, fields: map[string]bool{}}
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		switch len(cells) {
		case 5: // event | level | message | when | fields
			if _, dup := doc.events[name]; dup {
				t.Errorf("docs/audit-log.md lists %s twice", name)
			}
			e := docEvent{fields: map[string]bool{}}
			for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
				e.messages = append(e.messages, m[1])
			}
			for _, f := range backticked.FindAllStringSubmatch(cells[4], -1) {
				e.fields[f[1]] = true
			}
			doc.events[name] = e
		case 3: // field | type | meaning
			doc.fields[name] = true
		default:
			t.Fatalf("docs/audit-log.md: a table row of %d cells: %s", len(cells), line)
		}
	}
	if len(doc.events) == 0 || len(doc.fields) == 0 {
		t.Fatal("docs/audit-log.md: no event or field table found")
	}
	return doc
}

// stringConsts returns the string constants declared in a Go file whose
// names pass keep, by name.
func stringConsts(t *testing.T, path string, keep func(name string, typ ast.Expr) bool) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) || !keep(name.Name, vs.Type) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				consts[name.Name] = v
			}
		}
	}
	return consts
}

// logEventNames are the values of the logEvent constants of auditevents.go.
func logEventNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for name, v := range stringConsts(t, "auditevents.go", func(_ string, typ ast.Expr) bool {
		id, ok := typ.(*ast.Ident)
		return ok && id.Name == "logEvent"
	}) {
		names[v] = name
	}
	return names
}

// TestAuditLogDocumentsEveryEvent compares the event names of the code
// with docs/audit-log.md, both ways, and the fields of its rows with its
// fields table.
func TestAuditLogDocumentsEveryEvent(t *testing.T) {
	doc := readAuditDoc(t)
	code := logEventNames(t)
	for v, name := range code {
		if _, ok := doc.events[v]; !ok {
			t.Errorf("event %q (%s) is not in docs/audit-log.md", v, name)
		}
	}
	for v, e := range doc.events {
		if _, ok := code[v]; !ok {
			t.Errorf("docs/audit-log.md lists event %q, which is no logEvent constant", v)
		}
		for f := range e.fields {
			if !doc.fields[f] {
				t.Errorf("docs/audit-log.md: event %s has field %q, which the fields table lacks", v, f)
			}
		}
	}
	for f := range doc.fields {
		used := false
		for _, e := range doc.events {
			used = used || e.fields[f]
		}
		if !used {
			t.Errorf("docs/audit-log.md: field %q is on no event", f)
		}
	}
}

// TestAuditEventsComeOnlyFromTheConstants checks that no line of the
// package gets an "event" field except through eventField, and that no
// event is a literal or a conversion: so the constants are every event
// the module can write.
func TestAuditEventsComeOnlyFromTheConstants(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var fn string
			switch fun := call.Fun.(type) {
			case *ast.Ident:
				fn = fun.Name
			case *ast.SelectorExpr:
				if x, ok := fun.X.(*ast.Ident); ok {
					fn = x.Name + "." + fun.Sel.Name
				} else {
					fn = fun.Sel.Name
				}
			}
			at := fset.Position(call.Pos())
			switch {
			case strings.HasPrefix(fn, "zap.") && len(call.Args) > 0 && isStringLit(call.Args[0], "event") && path != "auditevents.go":
				t.Errorf("%s: an event field not made by eventField", at)
			case fn == "logEvent" && path != "auditevents.go":
				t.Errorf("%s: a logEvent made from a string", at)
			case fn == "eventField" && len(call.Args) == 1 && isStringLit(call.Args[0], ""):
				t.Errorf("%s: eventField of a literal, not a constant", at)
			case (fn == "h.audit" || fn == "audit") && len(call.Args) > 1 && isStringLit(call.Args[1], ""):
				t.Errorf("%s: an audit line whose event is a literal, not a constant", at)
			}
			return true
		})
	}
}

// isStringLit reports whether e is a string literal, with the value want
// unless want is empty.
func isStringLit(e ast.Expr, want string) bool {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	v, _ := strconv.Unquote(lit.Value)
	return want == "" || v == want
}

// TestEveryStepAndActionHasAnEvent fails when the sign-in service gains a
// step, or the admin API an action, that has no event name of its own.
func TestEveryStepAndActionHasAnEvent(t *testing.T) {
	steps := stringConsts(t, "signin/events.go", func(name string, _ ast.Expr) bool { return strings.HasPrefix(name, "Step") })
	if len(steps) == 0 {
		t.Fatal("no Step constant found in signin/events.go")
	}
	for name, step := range steps {
		if _, ok := stepEvents[step]; !ok {
			t.Errorf("signin.%s (%q) has no events in stepEvents", name, step)
		}
	}
	actions := stringConsts(t, "manage.go", func(name string, _ ast.Expr) bool {
		return strings.HasPrefix(name, "action") && name != "actionHashClass"
	})
	if len(actions) == 0 {
		t.Fatal("no action constant found in manage.go")
	}
	for name, action := range actions {
		if _, ok := adminEvents[action]; !ok {
			t.Errorf("%s (%q) has no event in adminEvents", name, action)
		}
	}
}

// TestAuditLinesCarryTheDocumentedFields writes the line of every sign-in
// event at every step, and of every operator action as it really ends,
// and checks each against its row in docs/audit-log.md.
func TestAuditLinesCarryTheDocumentedFields(t *testing.T) {
	doc := readAuditDoc(t)
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)

	// Sign-in events: every kind the service has, at every step it has
	// and at one it may gain, with every field an event can carry set.
	h := &TwoFactor{logger: logger}
	kinds := stringConsts(t, "signin/events.go", func(name string, _ ast.Expr) bool { return strings.HasPrefix(name, "Event") })
	steps := []string{"", "a_future_step"}
	for step := range stepEvents {
		steps = append(steps, step)
	}
	for _, kind := range kinds {
		for _, step := range steps {
			if step == signin.StepLogin && (kind == signin.EventBadCode || kind == signin.EventReplayedCode) {
				continue // no code is asked for at login
			}
			for _, scope := range []string{signin.ScopeAccount, signin.ScopeClient, signin.ScopeOne, signin.ScopeOthers} {
				h.auditEvent(signin.Event{
					Kind: kind, Step: step, User: "alice", Known: true, Reason: "some_reason",
					Method: signin.MethodTOTP, Client: signin.Client{IP: "198.51.100.7"},
					Remaining: 3, Sessions: 2, Scope: scope, Until: time.Now(), Err: errors.New("broken"),
				})
			}
		}
	}
	// A CSRF refusal is written by the pages, not from an event.
	h.audit("198.51.100.7", eventCSRFRejected, "alice", "")

	// Operator actions on a database, as the admin API logs them.
	admin, cleanup, err := provisionKeys(t, filepath.Join(t.TempDir(), "2fa.db"), keyConfig{key: keyB64(1)})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []adminRequest{
		{Action: actionAddUser, Name: "zoe", PasswordHash: testHash(), OtherHashClass: true},
		{Action: actionUsers},
		{Action: actionPasswd, Name: "zoe", PasswordHash: testHash(), OtherHashClass: true},
		{Action: actionReset, Name: "zoe"},
		{Action: actionRevoke, Name: "zoe"},
		{Action: actionUnlock, Name: "zoe"},
		{Action: actionReseal},
		{Action: actionRemoveUser, Name: "zoe"},
		{Action: actionRevoke, Name: "nobody"}, // refused: unknown_user
	} {
		res, err := admin.db.administer(req, time.Now())
		auditAdmin(logger, "admin_api", req, res, err, zap.String("remote_addr", "127.0.0.1:50000"))
	}

	seen := map[string]bool{}
	for _, entry := range logs.All() {
		fields := entry.ContextMap()
		event, _ := fields["event"].(string)
		row, ok := doc.events[event]
		if !ok {
			t.Errorf("a line with event %q (message %q) is not in docs/audit-log.md", event, entry.Message)
			continue
		}
		seen[event] = true
		if len(row.messages) > 0 && !slices.Contains(row.messages, entry.Message) {
			t.Errorf("event %s: message %q, the doc says %q", event, entry.Message, row.messages)
		}
		for name := range fields {
			if !row.fields[name] {
				t.Errorf("event %s has field %q, which its row in docs/audit-log.md does not name", event, name)
			}
		}
	}
	for _, event := range []string{"login_failed", "confirm_locked", "sign_in_step_failed", "sign_in_bookkeeping_failed", "admin_add_user", "admin_reseal", "admin_revoke"} {
		if !seen[event] {
			t.Errorf("no %s line was written: the test no longer drives it", event)
		}
	}
}
