package identity

import (
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// FuzzAuthenticate feeds a Graph request's Authorization header to
// Authenticate. In the input, "{token}" stands for a real access token of
// application One in tenant A, minted once per run, so seeds start from a
// valid token and its mutations (a claim, the header, the signature, the
// scheme). Nothing may panic; a refusal is 401 (errs.Unauthenticated);
// the only caller ever let in is the one that token names.
func FuzzAuthenticate(f *testing.F) {
	e := newEnv(f)
	var once sync.Once
	var tok string
	f.Add("Bearer {token}")
	f.Fuzz(func(t *testing.T, header string) {
		once.Do(func() { tok = e.token(t, tenantA, appOne, secret1) })
		r := bearer("")
		r.Header.Set("Authorization", strings.ReplaceAll(header, "{token}", tok))
		p, err := e.svc.Authenticate(r)
		if err != nil {
			if k := errs.KindOf(err); k != errs.Unauthenticated {
				t.Fatalf("refused as %v: %v", k, err)
			}
			return
		}
		if p.TenantID != tenantA || p.AppID != appOne {
			t.Fatalf("let in %+v", p)
		}
	})
}
