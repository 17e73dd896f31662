package twofactor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminBase is the admin API's path on Caddy's admin endpoint.
const adminBase = "/two_factor/"

// adminAPI is the admin API of two_factor, on Caddy's admin endpoint. It
// acts on the databases the running config has open, so a change takes
// effect at once; `caddy two-factor` is its client. Endpoints, each taking
// ?db=<absolute path> to choose a database when several are open:
//
//	GET    /two_factor/users                       list users
//	GET    /two_factor/hash_class                  the hash class new passwords must have
//	POST   /two_factor/users                       add a user: {"name", "password_hash", "email"}
//	PUT    /two_factor/users/<name>/password       change a password: {"password_hash"}
//	DELETE /two_factor/users/<name>                remove a user
//	POST   /two_factor/users/<name>/reset          drop every factor, end sessions
//	POST   /two_factor/users/<name>/remove_passkey remove a passkey: {"passkey": name or ID}
//	POST   /two_factor/users/<name>/revoke         end all sessions
//	POST   /two_factor/users/<name>/unlock         clear failed attempts
//	PUT    /two_factor/users/<name>/email          set the e-mail address: {"email"}
//	POST   /two_factor/reseal                      seal every secret with the
//	                                               current encryption_key, compact
//
// Answers are JSON (see adminResult); a refusal is {"error", "code"} with
// a 4xx status. Passwords never travel here, only hashes, and a hash must
// be of the class the config checks unknown names against (see
// checkHashClass) unless the body says "other_hash_class": true.
type adminAPI struct {
	logger *zap.Logger
	now    func() time.Time
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.two_factor",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the admin API. It holds no state of its own: each
// request finds the databases open at that moment.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	a.now = time.Now
	return nil
}

// Routes returns the admin API's routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminBase, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	req, err := parseAdminRequest(r)
	if err != nil {
		return err
	}
	var res adminResult
	db, err := findDatabase(r.URL.Query().Get("db"))
	if err == nil {
		res, err = db.administer(req, a.now())
	}
	if storeUnavailable(err) {
		// The store could not answer; asking again later may work. The
		// refusal's shape, with a status and header that say so.
		w.Header().Set("Retry-After", storeRetryAfterValue)
		err = refuse(codeUnavailable, "%v", err)
	}
	auditAdmin(a.logger, "admin_api", req, res, err, zap.String("remote_addr", r.RemoteAddr))
	var refused *adminError
	switch {
	case errors.As(err, &refused):
		return writeJSON(w, refusalStatus(refused.Code), refused)
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	status := http.StatusOK
	if req.Action == actionAddUser {
		status = http.StatusCreated
	}
	return writeJSON(w, status, res)
}

func refusalStatus(code string) int {
	switch code {
	case codeUnknownUser, codeNoDatabase, codeNotOpen:
		return http.StatusNotFound
	case codeUserExists, codeDefinedInConfig, codeChooseDatabase, codeHashClass, codeNoKey, codeKeysDiffer, codeUnreadable:
		return http.StatusConflict
	case codeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// adminRoutes maps a method and the path below /two_factor/ to an action;
// the user name's segment is left empty.
var adminRoutes = map[string]string{
	"GET users":                  actionUsers,
	"GET hash_class":             actionHashClass,
	"POST users":                 actionAddUser,
	"PUT users//password":        actionPasswd,
	"DELETE users/":              actionRemoveUser,
	"POST users//reset":          actionReset,
	"POST users//revoke":         actionRevoke,
	"POST users//unlock":         actionUnlock,
	"POST users//remove_passkey": actionRemovePasskey,
	"POST reseal":                actionReseal,
	"PUT users//email":           actionSetEmail,
}

// parseAdminRequest reads the action a request asks for. User names are
// path segments, escaped (a name may hold a slash).
func parseAdminRequest(r *http.Request) (adminRequest, error) {
	segments := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), adminBase), "/")
	var req adminRequest
	if len(segments) >= 2 {
		name, err := url.PathUnescape(segments[1])
		if err != nil || name == "" {
			return req, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("bad user name in path %s", r.URL.EscapedPath())}
		}
		req.Name = name
		segments[1] = ""
	}
	action, ok := adminRoutes[r.Method+" "+strings.Join(segments, "/")]
	if !ok {
		return req, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no two_factor admin endpoint %s %s", r.Method, r.URL.Path)}
	}
	req.Action = action
	if action == actionRemovePasskey {
		var body struct {
			Passkey string `json:"passkey"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, maxFormBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Passkey == "" {
			return req, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading request body: want {\"passkey\": name or ID}: %v", err)}
		}
		req.Passkey = body.Passkey
	}
	if action == actionAddUser || action == actionPasswd {
		var body struct {
			Name           string `json:"name"`
			PasswordHash   string `json:"password_hash"`
			OtherHashClass bool   `json:"other_hash_class"`
			Email          string `json:"email"`
		}
		if err := decodeBody(r, &body); err != nil {
			return req, err
		}
		if action == actionAddUser {
			req.Name, req.Email = body.Name, body.Email
		}
		req.PasswordHash, req.OtherHashClass = body.PasswordHash, body.OtherHashClass
	}
	if action == actionSetEmail {
		var body struct {
			Email string `json:"email"`
		}
		if err := decodeBody(r, &body); err != nil {
			return req, err
		}
		req.Email = body.Email
	}
	return req, nil
}

// decodeBody reads a JSON request body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxFormBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading request body: %w", err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
