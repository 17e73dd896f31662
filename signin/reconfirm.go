package signin

import (
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Reconfirm records a fresh second factor of the signed-in session sess
// (as read by SignedIn), given on the confirm page when a step-up rule or
// a re-check asks for one: factor is checked and used up as at sign-in
// (see StepUp), the session's confirmation time becomes now and a new
// re-check deadline is drawn, and the session moves to a new token, which
// it returns. The old token ends in the same transaction: a token seen
// before the factor was given (in a log, over a shoulder) is not the one
// that passes a step-up rule.
//
// Errors are StepUp's.
func (s *Service) Reconfirm(sess *store.Session, factor string, c Client) (string, error) {
	return s.ReconfirmAfter(StepUpRequest{Session: sess, Factor: factor, Client: c})
}

// ReconfirmAfter is Reconfirm with the factor of req: a code, or a
// passkey's answer (req.Assertion) to the ceremony BeginPasskeyStepUp
// began. A passkey counts as a code does.
func (s *Service) ReconfirmAfter(req StepUpRequest) (string, error) {
	sess, c := req.Session, req.Client
	req.Step = StepReconfirm
	var (
		token  string
		method string
	)
	err := s.StepUp(req,
		func(tx store.Tx, rec *store.Session, _ *store.User) error {
			if err := tx.DeleteSession(rec.Key); err != nil {
				return err
			}
			var err error
			token, rec.Key, err = store.NewSessionToken()
			// Giving a factor is activity. The stored last use may lag
			// the gate's (it is written behind), and the new key starts
			// from the stored one.
			rec.LastSeen = s.deps.Now()
			method = rec.Method
			return err
		})
	if err != nil {
		return "", err
	}
	s.observers.emit(Event{Kind: EventReconfirmed, Step: StepReconfirm, User: sess.User, Known: true, Method: method, Client: c})
	return token, nil
}
