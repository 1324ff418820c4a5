// Package identity is Switchboard's stand-in for the Microsoft identity
// platform: the directory of applications, tenants, users and numbers taken
// from the configuration; the RS256 signing keys, kept in a JetStream
// key-value bucket so every node signs with and publishes the same keys; the
// OAuth2 client-credentials token endpoint and the OpenID configuration and
// JWKS documents
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow);
// authentication of Graph requests and their application permissions
// (https://learn.microsoft.com/graph/permissions-reference); and the tokens
// Switchboard puts on notifications to bots
// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
//
// The contract is docs/decisions.md#identity-and-notification-signing.
//
// Tokens are signed RS256 with keys every node shares through the store
// (Keyring); access tokens and notification tokens use the same keys and the
// same JWKS, told apart by their audience.
package identity

import (
	"crypto/sha1"
	"crypto/sha256"
	"slices"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/ids"
)

// Directory answers who is who: applications, tenants, users and the numbers
// that ring applications, as configured. It is immutable once built and safe
// for concurrent use. The values it returns are shared: callers must not
// modify them.
type Directory struct {
	apps      map[string]*App           // lower-case app id
	tenants   map[string]*config.Tenant // lower-case tenant id
	users     map[string]userRef        // lower-case tenant id + "/" + lower-case user id
	userIDs   map[string]userRef        // lower-case user id (unique across tenants)
	phones    map[string]userRef        // E.164
	sip       map[string]userRef        // SIP user part (case-sensitive, RFC 3261 §19.1.4)
	numbers   map[string]*numberRef     // number as configured
	instances map[string]*numberRef     // lower-case app id + "/" + lower-case instance id
}

type userRef struct {
	tenant string
	user   *config.User
}

type numberRef struct {
	app      *App
	number   string
	tenant   string
	instance string
}

// App is a configured application (bot). Its fields are shared with the
// Directory: do not modify them.
type App struct {
	// ID is the application (client) id as configured.
	ID string
	// DisplayName names the bot; it is the app_displayname claim.
	DisplayName string
	// CallbackURI is the registered calling webhook.
	CallbackURI string
	// MediaMode is "service" or "app".
	MediaMode string
	// Tenants are the ids of the tenants the app is provisioned in, spelled as
	// the tenants are configured.
	Tenants []string
	// Permissions are the application permissions (roles) granted.
	Permissions []string
	// Numbers are the numbers and SIP user parts that ring the app.
	Numbers []string

	secret [sha256.Size]byte // SHA-256 of the client secret, compared in constant time
}

// InTenant reports whether the app is provisioned in tenantID (GUIDs compare
// case-insensitively).
func (a *App) InTenant(tenantID string) bool {
	for _, t := range a.Tenants {
		if strings.EqualFold(t, tenantID) {
			return true
		}
	}
	return false
}

// Has reports whether the app holds the permission perm.
func (a *App) Has(perm string) bool {
	for _, p := range a.Permissions {
		if strings.EqualFold(p, perm) {
			return true
		}
	}
	return false
}

// NewDirectory builds the directory of c. It copies what it keeps, so later
// changes to c do not show. c is expected to have passed config.Validate.
func NewDirectory(c *config.Config) *Directory {
	d := &Directory{
		apps:      make(map[string]*App, len(c.Applications)),
		tenants:   make(map[string]*config.Tenant, len(c.Tenants)),
		users:     map[string]userRef{},
		userIDs:   map[string]userRef{},
		phones:    map[string]userRef{},
		sip:       map[string]userRef{},
		numbers:   map[string]*numberRef{},
		instances: map[string]*numberRef{},
	}
	for _, ct := range c.Tenants {
		t := ct
		t.Users = slices.Clone(ct.Users)
		d.tenants[strings.ToLower(t.ID)] = &t
		for i := range t.Users {
			u := &t.Users[i]
			ref := userRef{tenant: t.ID, user: u}
			d.users[strings.ToLower(t.ID)+"/"+strings.ToLower(u.ID)] = ref
			d.userIDs[strings.ToLower(u.ID)] = ref
			if u.Phone != "" {
				d.phones[u.Phone] = ref
			}
			if u.SIP.Username != "" {
				d.sip[u.SIP.Username] = ref
			}
		}
	}
	for _, ca := range c.Applications {
		a := &App{
			ID:          ca.ID,
			DisplayName: ca.DisplayName,
			CallbackURI: ca.CallbackURI,
			MediaMode:   ca.MediaMode,
			Permissions: slices.Clone(ca.Permissions),
			secret:      sha256.Sum256([]byte(ca.Secret)),
		}
		if a.MediaMode == "" {
			a.MediaMode = "service"
		}
		for _, t := range ca.Tenants {
			a.Tenants = append(a.Tenants, d.canonicalTenant(t))
		}
		for _, n := range ca.Numbers {
			a.Numbers = append(a.Numbers, n.Number)
			ref := &numberRef{app: a, number: n.Number, instance: n.InstanceID}
			switch {
			case n.Tenant != "":
				ref.tenant = d.canonicalTenant(n.Tenant)
			case len(a.Tenants) == 1:
				ref.tenant = a.Tenants[0]
			}
			if ref.instance == "" {
				ref.instance = instanceID(a.ID, n.Number)
			}
			d.numbers[n.Number] = ref
			d.instances[strings.ToLower(a.ID)+"/"+strings.ToLower(ref.instance)] = ref
		}
		d.apps[strings.ToLower(a.ID)] = a
	}
	return d
}

// canonicalTenant spells id as its tenant is configured.
func (d *Directory) canonicalTenant(id string) string {
	if t, ok := d.tenants[strings.ToLower(id)]; ok {
		return t.ID
	}
	return id
}

// App returns the application with the given id (case-insensitive).
func (d *Directory) App(id string) (*App, bool) {
	a, ok := d.apps[strings.ToLower(id)]
	return a, ok
}

// Tenant returns the tenant with the given id (case-insensitive).
func (d *Directory) Tenant(id string) (*config.Tenant, bool) {
	t, ok := d.tenants[strings.ToLower(id)]
	return t, ok
}

// User returns the user userID of tenant tenantID (both case-insensitive).
func (d *Directory) User(tenantID, userID string) (*config.User, bool) {
	r, ok := d.users[strings.ToLower(tenantID)+"/"+strings.ToLower(userID)]
	return r.user, ok
}

// UserByID returns the user with object id userID (case-insensitive) in
// whichever tenant it is; config validation keeps user ids unique across
// tenants.
func (d *Directory) UserByID(userID string) (tenantID string, u *config.User, ok bool) {
	r, ok := d.userIDs[strings.ToLower(userID)]
	return r.tenant, r.user, ok
}

// UserByPhone returns the user whose E.164 number is phone, and its tenant.
func (d *Directory) UserByPhone(phone string) (tenantID string, u *config.User, ok bool) {
	r, ok := d.phones[phone]
	return r.tenant, r.user, ok
}

// UserBySIP returns the user whose SIP user part is username, and its
// tenant. User parts compare case-sensitively (RFC 3261 §19.1.4).
func (d *Directory) UserBySIP(username string) (tenantID string, u *config.User, ok bool) {
	r, ok := d.sip[username]
	return r.tenant, r.user, ok
}

// Number returns the application that owns num (an E.164 number or a SIP
// user part from applications[].numbers), the tenant the number belongs to
// (its configured tenant, else the application's only tenant) and its
// applicationInstance id (configured, else derived from app id and number so
// it is the same on every node and across restarts).
func (d *Directory) Number(num string) (app *App, tenantID, instanceID string, ok bool) {
	r, ok := d.numbers[num]
	if !ok {
		return nil, "", "", false
	}
	return r.app, r.tenant, r.instance, true
}

// AppInstance returns the number owned by application appID whose
// applicationInstance id is instanceID, and the number's tenant. It resolves
// the source of a PSTN call a bot places as an application instance.
func (d *Directory) AppInstance(appID, instanceID string) (number, tenantID string, ok bool) {
	r, ok := d.instances[strings.ToLower(appID)+"/"+strings.ToLower(instanceID)]
	if !ok {
		return "", "", false
	}
	return r.number, r.tenant, true
}

// Namespaces of the name-based (version 5) UUIDs identity derives.
var (
	instanceNamespace  = [16]byte{0x5b, 0x1c, 0x6e, 0x2a, 0x93, 0x4f, 0x4d, 0x0e, 0x8a, 0x61, 0x27, 0xc4, 0x0b, 0x9e, 0x3d, 0x71}
	principalNamespace = [16]byte{0x2e, 0x87, 0xd0, 0x4c, 0x1a, 0x55, 0x4b, 0x93, 0xb1, 0x06, 0xf3, 0x48, 0x9c, 0x2d, 0x60, 0xe5}
)

// instanceID derives the applicationInstance id of number owned by appID.
func instanceID(appID, number string) string {
	return uuidV5(instanceNamespace, strings.ToLower(appID)+"/"+number)
}

// principalID derives the object id of appID's service principal in
// tenantID: like Entra ID, one per app and tenant. It is the oid and sub of
// access tokens.
func principalID(appID, tenantID string) string {
	return uuidV5(principalNamespace, strings.ToLower(appID)+"/"+strings.ToLower(tenantID))
}

// uuidV5 is a name-based UUID (RFC 9562 §5.5).
func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return ids.Format(u)
}
