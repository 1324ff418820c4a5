package identity

import (
	"encoding/json"

	"github.com/golang-jwt/jwt/v5"
)

// The audiences of Graph access tokens: the resource URI and Graph's app id.
const (
	graphResource = "https://graph.microsoft.com"
	graphAppID    = "00000003-0000-0000-c000-000000000000"
)

// audience is an aud claim: written as a single string, as Entra ID writes
// it (jwt.ClaimStrings would write an array), and read as a string or an
// array (RFC 7519 §4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var cs jwt.ClaimStrings
	if err := cs.UnmarshalJSON(b); err != nil {
		return err
	}
	*a = audience(cs)
	return nil
}

// accessClaims are the claims of a Graph access token, shaped as Entra ID's
// app-only tokens
// (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference)
// in their v2.0 form.
type accessClaims struct {
	Aud            audience         `json:"aud"`
	Iss            string           `json:"iss"`
	Iat            *jwt.NumericDate `json:"iat,omitempty"`
	Nbf            *jwt.NumericDate `json:"nbf,omitempty"`
	Exp            *jwt.NumericDate `json:"exp,omitempty"`
	AppID          string           `json:"appid"`
	Azp            string           `json:"azp"`
	AppDisplayName string           `json:"app_displayname,omitempty"`
	AppIDACR       string           `json:"appidacr"`
	IDType         string           `json:"idtyp"`
	OID            string           `json:"oid"`
	Sub            string           `json:"sub"`
	TID            string           `json:"tid"`
	Roles          []string         `json:"roles,omitempty"`
	Ver            string           `json:"ver"`
	UTI            string           `json:"uti"`
}

var _ jwt.Claims = (*accessClaims)(nil)

func (c *accessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c *accessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat, nil }
func (c *accessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf, nil }
func (c *accessClaims) GetIssuer() (string, error)                   { return c.Iss, nil }
func (c *accessClaims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *accessClaims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings(c.Aud), nil }

// notificationClaims are the claims of the token on a notification to a bot
// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
type notificationClaims struct {
	Aud audience         `json:"aud"`
	Iss string           `json:"iss"`
	TID string           `json:"tid"`
	Iat *jwt.NumericDate `json:"iat"`
	Nbf *jwt.NumericDate `json:"nbf"`
	Exp *jwt.NumericDate `json:"exp"`
}

var _ jwt.Claims = (*notificationClaims)(nil)

func (c *notificationClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c *notificationClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat, nil }
func (c *notificationClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf, nil }
func (c *notificationClaims) GetIssuer() (string, error)                   { return c.Iss, nil }
func (c *notificationClaims) GetSubject() (string, error)                  { return "", nil }
func (c *notificationClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(c.Aud), nil
}
