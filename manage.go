package twofactor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Operator actions on one database: what `caddy two-factor` does, through
// the admin API of the Caddy that has the database open (adminapi.go) or,
// when no Caddy has it open, on the file itself (command.go). Both ends
// call database.administer, so they cannot drift apart; it hands the
// actions on users to signin.Operator and keeps what only this package
// knows: the configs on the database, their hash classes, reseal.

// The actions, as the command line and the audit log name them.
const (
	actionUsers      = "users"
	actionAddUser    = "add-user"
	actionPasswd     = "passwd"
	actionRemoveUser = "remove-user"
	actionReset      = "reset"
	actionRevoke     = "revoke"
	actionUnlock     = "unlock"
	actionSetEmail   = "set-email"
	actionReseal     = "reseal"
	// actionRemovePasskey removes one passkey of a user, named by its
	// name or credential ID.
	actionRemovePasskey = "remove-passkey"
	// actionHashClass asks which hash class new passwords must have; the
	// command line asks it before add-user and passwd.
	actionHashClass = "hash-class"
)

// namedAction reports whether action acts on one user, named in the request.
func namedAction(action string) bool {
	return action != actionUsers && action != actionReseal
}

// adminRequest is one operator action. PasswordHash is set for add-user and
// passwd only: passwords are hashed by the command line, never sent.
// OtherHashClass says the operator chose the hash's algorithm knowing it is
// not the class of the config's users (see checkHashClass).
type adminRequest struct {
	Action         string
	Name           string
	PasswordHash   string
	OtherHashClass bool
	// Passkey names the passkey of remove-passkey: its name or ID.
	Passkey string
	// Email is the address of set-email ("" removes it) and add-user.
	Email string
}

// userInfo is what an operator sees of a user.
type userInfo = signin.UserInfo

// adminResult answers an adminRequest; it is the JSON of the admin API and
// of `caddy two-factor --json`.
type adminResult struct {
	DB     string `json:"db"`
	Action string `json:"action"`
	// Users is set by the users action (empty, not absent, when there are none).
	Users []userInfo `json:"users,omitzero"`
	// Name and User are the user acted on and its state afterwards (no
	// User after remove-user).
	Name string    `json:"name,omitempty"`
	User *userInfo `json:"user,omitempty"`
	// SessionsEnded is set by the actions that end sessions.
	SessionsEnded *int `json:"sessions_ended,omitempty"`
	// HashClass is set by hash-class: the algorithm and cost a new
	// password's hash must have, and HashClassFrom where that comes from
	// (one of the hashClassFrom constants).
	HashClass     *signin.HashClass `json:"hash_class,omitempty"`
	HashClassFrom string            `json:"hash_class_from,omitempty"`
	// Warning says what the action, done as asked, gives away.
	Warning string `json:"warning,omitempty"`
	// Resealed is set by the reseal action.
	Resealed *resealResult `json:"resealed,omitempty"`
}

// Where the hash class of new passwords comes from.
const (
	// The users of the running config (of its first user).
	hashClassFromConfig = "config"
	// Offline: the config that last opened the database.
	hashClassFromLastConfig = "last_config"
	// Offline: the users already in the database.
	hashClassFromDatabase = "database"
	// No user to follow: Caddy's argon2id defaults, the fake hash of a
	// config without users.
	hashClassFromDefault = "default"
)

// metaHashClass names the meta record holding the hash class of the
// configs that last opened the database, for the command line when no
// Caddy has the file open.
const metaHashClass = "hash_class"

// Codes of adminError, stable for scripts.
const (
	codeBadRequest      = "bad_request"
	codeUnknownUser     = "unknown_user"
	codeUnknownPasskey  = "unknown_passkey"
	codeUserExists      = "user_exists"
	codeDefinedInConfig = "defined_in_config"
	codeNoDatabase      = "no_database"
	codeChooseDatabase  = "choose_database"
	codeNotOpen         = "database_not_open"
	codeLocked          = "database_locked"
	codeNotRunning      = "not_running"
	codeNoAdminAPI      = "no_admin_api"
	codeNoAccess        = "no_access"
	codeHashClass       = "hash_class_mismatch"
	codeNoKey           = "no_encryption_key"
	codeKeysDiffer      = "keys_differ"
	codeUnreadable      = "secrets_unreadable"
	// The store could not answer (store.ErrUnavailable): try again.
	codeUnavailable = "store_unavailable"
)

// adminError is an action refused for a reason the operator can act on.
type adminError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"error"`
}

func (e *adminError) Error() string { return e.Message }

func refuse(code, format string, args ...any) error {
	return &adminError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorCode is the code of an adminError in err's chain, or "".
func errorCode(err error) string {
	if ae, ok := errors.AsType[*adminError](err); ok {
		return ae.Code
	}
	return ""
}

// register adds a provisioned handler to db, refusing a config that
// declares a user the database also manages: a name is defined in one
// place only. Cleanup must unregister h, whether or not this succeeded.
func (db *database) register(h *TwoFactor) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	err := db.store.View(func(tx store.Tx) error {
		for _, name := range slices.Sorted(maps.Keys(h.accounts)) {
			u, err := tx.User(name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if u.PasswordHash != "" {
				return fmt.Errorf("user %q is declared in the config and also managed in the 2FA database %s (added with `caddy two-factor add-user`); a user is defined in one place only: remove the user line, or remove the database's user with `caddy two-factor remove-user %s`", name, db.path, name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if db.configs == nil {
		db.configs = make(map[*TwoFactor]struct{})
	}
	db.configs[h] = struct{}{}
	db.checkHashClassesLocked(h.logger)
	return nil
}

// configHashClasses are the hash classes the configs check unknown names
// against: those of configs that declare users first (sorted), then the
// default of configs that declare none. A new database user's hash should
// be of the first; from says where it comes from.
func configHashClasses(configs map[*TwoFactor]struct{}) (classes []signin.HashClass, from string) {
	var withUsers, without []signin.HashClass
	for h := range configs {
		if len(h.accounts) > 0 {
			withUsers = append(withUsers, h.fakeAccount.Class)
		} else {
			without = append(without, h.fakeAccount.Class)
		}
	}
	byName := func(a, b signin.HashClass) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(withUsers, byName)
	slices.SortFunc(without, byName)
	for _, c := range append(withUsers, without...) {
		if !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	from = hashClassFromDefault
	if len(withUsers) > 0 {
		from = hashClassFromConfig
	}
	return classes, from
}

// checkHashClassesLocked warns of what lets sign-in timing tell database
// users from unknown names: configs on the database that check unknown
// names against hashes of different classes, and database users whose
// hash is of none of them. It records the class for the command line to
// use when no Caddy has the file open. The caller holds db.mu; logger is
// the registering config's.
func (db *database) checkHashClassesLocked(logger *zap.Logger) {
	classes, _ := configHashClasses(db.configs)
	if len(classes) > 1 {
		names := make([]string, len(classes))
		for i, c := range classes {
			names[i] = c.String()
		}
		logger.Warn("configs on one 2FA database check unknown user names against password hashes of different algorithms or costs: "+
			"a database user's hash is of one of them, so in the other configs the time a sign-in takes tells database users from unknown names; "+
			"give the configs users hashed alike, or their own db (expected once during a reload that changes the users' hashes)",
			zap.String("db", db.path), zap.Strings("hash_classes", names))
	}
	var (
		others   []string
		recorded bool
	)
	class, _ := json.Marshal(classes[0])
	err := db.store.View(func(tx store.Tx) error {
		old, err := tx.Meta(metaHashClass)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		recorded = err == nil && bytes.Equal(old, class)
		return tx.ForEachUser(func(u *store.User) error {
			if a, err := signin.NewAccount(u.PasswordHash); err == nil && !slices.Contains(classes, a.Class) {
				others = append(others, u.Name)
			}
			return nil
		})
	})
	if err == nil && !recorded {
		err = db.store.Update(func(tx store.Tx) error { return tx.PutMeta(metaHashClass, class) })
	}
	if err != nil {
		logger.Error("checking the password hashes of 2FA database users", zap.String("db", db.path), zap.Error(err))
	}
	if len(others) > 0 {
		logger.Warn("2FA database users have password hashes of another algorithm or cost than the config's users: "+
			"the time a sign-in takes tells them from unknown names; set their passwords again with `caddy two-factor passwd`, which matches the config",
			zap.String("db", db.path), zap.String("hash_class", classes[0].String()), zap.Strings("users", others))
	}
}

// unregister removes a handler added by register.
func (db *database) unregister(h *TwoFactor) {
	db.mu.Lock()
	delete(db.configs, h)
	db.mu.Unlock()
}

// findDatabase returns the open database at path, or the only one open
// when path is empty.
func findDatabase(path string) (*database, error) {
	var open []*database
	databases.Range(func(_, v any) bool {
		open = append(open, v.(*database))
		return true
	})
	slices.SortFunc(open, func(a, b *database) int { return strings.Compare(a.path, b.path) })
	paths := make([]string, len(open))
	for i, db := range open {
		if db.path == path {
			return db, nil
		}
		paths[i] = db.path
	}
	switch {
	case len(open) == 0:
		return nil, refuse(codeNoDatabase, "no two_factor database is open in this Caddy (is two_factor in its config?)")
	case path != "":
		return nil, refuse(codeNotOpen, "2FA database %s is not open in this Caddy; open here: %s", path, strings.Join(paths, ", "))
	case len(open) > 1:
		return nil, refuse(codeChooseDatabase, "several 2FA databases are open: %s; choose one with --db", strings.Join(paths, ", "))
	}
	return open[0], nil
}

// administer carries out req. It holds db.mu for reading, so the configs
// it sees stay put and the store stays open until it is done.
func (db *database) administer(req adminRequest, now time.Time) (adminResult, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return adminResult{}, refuse(codeNotOpen, "2FA database %s was closed by a config change; try again", db.path)
	}
	res := adminResult{DB: db.path, Action: req.Action}
	if req.Action == actionReseal {
		resealed, err := db.resealLocked()
		res.Resealed = resealed
		return res, err
	}
	v := db.viewLocked(now)
	switch req.Action {
	case actionUsers:
		users, err := v.op.Users()
		res.Users = users
		return res, err
	case actionHashClass:
		classes, from, err := v.hashClasses()
		if err == nil {
			res.HashClass, res.HashClassFrom = &classes[0], from
		}
		return res, err
	}

	res.Name = normalizeUsername(req.Name)
	if err := checkUsername(res.Name); err != nil {
		return res, refuse(codeBadRequest, "%v", err)
	}
	var (
		ended int
		err   error
	)
	if req.Action == actionAddUser || req.Action == actionPasswd {
		if res.Warning, err = v.checkHashClass(res.Name, req.PasswordHash, req.OtherHashClass); err != nil {
			return res, err
		}
	}
	if req.Email != "" {
		if req.Email, err = notify.ParseAddress(req.Email); err != nil {
			return res, refuse(codeBadRequest, "user %q: %v", res.Name, err)
		}
	}
	switch req.Action {
	case actionAddUser:
		ended, err = v.op.AddUserWithEmail(res.Name, req.PasswordHash, req.Email)
	case actionSetEmail:
		err = v.op.SetEmail(res.Name, req.Email)
	case actionPasswd:
		ended, err = v.op.SetPassword(res.Name, req.PasswordHash)
	case actionRemoveUser:
		ended, err = v.op.RemoveUser(res.Name)
	case actionReset:
		ended, err = v.op.Reset(res.Name)
	case actionRevoke:
		ended, err = v.op.Revoke(res.Name)
	case actionUnlock:
		err = v.op.Unlock(res.Name)
	case actionRemovePasskey:
		ended, err = v.op.RemovePasskey(res.Name, req.Passkey)
		if errors.Is(err, signin.ErrUnknownPasskey) {
			return res, refuse(codeUnknownPasskey, "user %q has no passkey %q, or more than one of that name (give its ID, as users --json shows it)", res.Name, req.Passkey)
		}
	default:
		return res, refuse(codeBadRequest, "unknown action %q", req.Action)
	}
	if err != nil {
		return res, operatorRefusal(req.Action, res.Name, err)
	}
	if req.Action != actionUnlock {
		res.SessionsEnded = &ended
	}
	if req.Action != actionRemoveUser {
		info, err := v.op.UserInfo(res.Name)
		res.User = &info
		return res, err
	}
	return res, nil
}

// operatorRefusal turns the sign-in service's refusal of an operator
// action into the adminError the operator sees; any other error (a store
// that could not answer) stays what it is.
func operatorRefusal(action, name string, err error) error {
	conflict, _ := errors.AsType[*signin.ConflictError](err)
	switch {
	case errors.Is(err, signin.ErrUnknownUser):
		return refuse(codeUnknownUser, "unknown user %q", name)
	case conflict == nil:
		return err
	case conflict.Reason == signin.ConflictExists:
		return refuse(codeUserExists, "user %q already exists (change its password with passwd)", name)
	case action == actionAddUser:
		return refuse(codeDefinedInConfig, "user %q is declared in the config; a user is defined in one place only", name)
	case action == actionRemoveUser:
		return refuse(codeDefinedInConfig, "user %q is declared in the config: %s there and reload", name, "remove its user line")
	}
	return refuse(codeDefinedInConfig, "user %q is declared in the config: %s there and reload", name, "change its password hash")
}

// adminView is a database as one admin action sees it.
type adminView struct {
	db *database
	// op carries out the actions on users.
	op *signin.Operator
	// offline is set when no config has the database open (see
	// signin.Scope).
	offline bool
	// classes and classFrom are the configs' hash classes, as
	// configHashClasses returns them; none if offline.
	classes   []signin.HashClass
	classFrom string
}

// viewLocked takes a view of db; the caller holds db.mu. auditAdmin
// writes the audit line of an operator action; other observers of the
// operator's events are added here.
func (db *database) viewLocked(now time.Time) adminView {
	scope := signin.Scope{Declared: make(map[string]bool), Offline: len(db.configs) == 0}
	for h := range db.configs {
		for name := range h.accounts {
			scope.Declared[name] = true
		}
		scope.Idle = max(scope.Idle, time.Duration(h.SessionIdle))
	}
	v := adminView{db: db, offline: scope.Offline}
	v.op = signin.NewOperator(scope, signin.Deps{Store: db.store, Attempts: db.attempts, Now: func() time.Time { return now }})
	v.op.Observe(db.operatorNotices(now))
	v.classes, v.classFrom = configHashClasses(db.configs)
	return v
}

// hashClasses returns the hash classes a new password's hash may have,
// the one to use first, and where that comes from. Offline, the configs
// are unknown: the class is the one recorded by the configs that last
// opened the database, else that of its first user, else the default.
func (v adminView) hashClasses() ([]signin.HashClass, string, error) {
	if !v.offline {
		return v.classes, v.classFrom, nil
	}
	var (
		class signin.HashClass
		from  string
	)
	err := v.db.store.View(func(tx store.Tx) error {
		raw, err := tx.Meta(metaHashClass)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && json.Unmarshal(raw, &class) == nil && class.Algorithm != "" {
			from = hashClassFromLastConfig
			return nil
		}
		return tx.ForEachUser(func(u *store.User) error {
			if a, err := signin.NewAccount(u.PasswordHash); err == nil && from == "" {
				class, from = a.Class, hashClassFromDatabase
			}
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	if from == "" {
		if class, err = signin.DefaultHashClass(signin.Argon2id); err != nil {
			return nil, "", err
		}
		from = hashClassFromDefault
	}
	return []signin.HashClass{class}, from, nil
}

// checkHashClass refuses a hash of a class that unknown names are not
// checked against, which would let the time a sign-in takes tell the user
// from unknown names, unless the operator chose it knowingly (insist): it
// then returns a warning for the answer and the audit log.
func (v adminView) checkHashClass(name, hash string, insist bool) (warning string, err error) {
	a, err := signin.NewAccount(hash)
	if err != nil {
		return "", refuse(codeBadRequest, "user %q: %v", name, err)
	}
	classes, from, err := v.hashClasses()
	if err != nil || slices.Contains(classes, a.Class) {
		return "", err
	}
	if !insist {
		return "", refuse(codeHashClass, "user %q: the password hash is %s, but unknown user names are checked against %s (%s), "+
			"so the time a sign-in takes would tell this user from them; hash with %s (`caddy two-factor` does so by itself), "+
			"or choose the algorithm knowingly (`--algorithm`; in the admin API, \"other_hash_class\": true)",
			name, a.Class, classes[0], hashClassOrigin(from), classes[0])
	}
	return fmt.Sprintf("the password hash is %s, but unknown user names are checked against %s (%s): the time a sign-in takes tells this user from them",
		a.Class, classes[0], hashClassOrigin(from)), nil
}

// hashClassOrigin says in words where a hash class comes from.
func hashClassOrigin(from string) string {
	switch from {
	case hashClassFromConfig:
		return "like the config's first user"
	case hashClassFromLastConfig:
		return "like the first user of the config that last opened this database"
	case hashClassFromDatabase:
		return "like the users already in this database"
	}
	return "Caddy's argon2id defaults, as no user's hash sets another"
}

// auditAdmin writes the one log line of an admin action. It never logs a
// password hash. Asking for the hash class reads nothing of the users and
// is not logged.
func auditAdmin(logger *zap.Logger, source string, req adminRequest, res adminResult, err error, fields ...zap.Field) {
	if req.Action == actionHashClass {
		return
	}
	fs := append([]zap.Field{
		eventField(adminEvents[req.Action]),
		zap.String("source", source),
		zap.String("db", res.DB),
	}, fields...)
	if namedAction(req.Action) {
		fs = append(fs, zap.String("user", normalizeUsername(req.Name)))
	}
	if res.SessionsEnded != nil {
		fs = append(fs, zap.Int("sessions_ended", *res.SessionsEnded))
	}
	if r := res.Resealed; r != nil {
		fs = append(fs, zap.Int("users_resealed", r.Users), zap.Int("sessions_resealed", r.Sessions))
		if r.Compacted != nil {
			fs = append(fs, zap.Int64("size_before", r.Compacted.Before), zap.Int64("size_after", r.Compacted.After))
		}
	}
	switch {
	case err != nil:
		fs = append(fs, zap.String("error", err.Error()))
		if code := errorCode(err); code != "" {
			fs = append(fs, zap.String("code", code))
		}
		logger.Warn("two-factor admin action refused", fs...)
	case res.Warning != "":
		logger.Warn("two-factor admin action", append(fs, zap.String("warning", res.Warning))...)
	default:
		logger.Info("two-factor admin action", fs...)
	}
}
