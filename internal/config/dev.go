package config

import "time"

// The demo ids of `serve --dev`. They are fixed so the README can use them.
const (
	DevTenantID  = "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70"
	DevAliceID   = "a11ce000-0000-4000-8000-000000000001"
	DevBobID     = "b0b00000-0000-4000-8000-000000000002"
	DevCarolID   = "ca201000-0000-4000-8000-000000000003"
	DevEveID     = "e0e00000-0000-4000-8000-000000000004"
	DevDanID     = "da400000-0000-4000-8000-000000000005"
	DevAppID     = "b07ab07a-0000-4000-8000-00000000b07a"
	DevAppSecret = "dev-secret-change-me"
	DevAppNumber = "+15550199"
	// DevTollNumber is the demo tenant's dial-in number for its online meetings.
	DevTollNumber = "+15550150"
	// DevOperator and DevOperatorPassword sign in to /console.
	DevOperator         = "operator"
	DevOperatorPassword = "operator-secret"
)

// Dev returns the configuration of `serve --dev`: one tenant with simulated
// users and one SIP user (eve) for a real phone, and a bot application holding every calls permission whose webhook
// is the one `switchboard webhook` listens on.
func Dev() Config {
	c := Default()
	c.DataDir = "./data-dev"
	c.Log.Level = "info"
	c.Simulator.Enabled = true
	c.Tenants = []Tenant{{
		ID: DevTenantID, DisplayName: "Contoso (demo)",
		Conferencing: Conferencing{TollNumber: DevTollNumber},
		Users: []User{
			{ID: DevAliceID, DisplayName: "Alice", Phone: "+15550100", Simulated: true,
				SIP: SIPCredentials{Username: "alice", Password: "alice-secret"}},
			{ID: DevBobID, DisplayName: "Bob", Phone: "+15550101", Simulated: true,
				Simulation: Simulation{DTMF: "123#", DTMFInterval: Duration(500 * time.Millisecond)},
				SIP:        SIPCredentials{Username: "bob", Password: "bob-secret"}},
			{ID: DevCarolID, DisplayName: "Carol (always busy)", Phone: "+15550102", Simulated: true,
				Simulation: Simulation{Answer: "busy"}},
			{ID: DevDanID, DisplayName: "Dan", Phone: "+15550104", Simulated: true},
			{ID: DevEveID, DisplayName: "Eve (your SIP phone)", Phone: "+15550103",
				SIP: SIPCredentials{Username: "eve", Password: "eve-secret"}},
		},
	}}
	c.Applications = []Application{{
		ID: DevAppID, DisplayName: "Demo bot", Secret: DevAppSecret,
		Tenants:     []string{DevTenantID},
		Permissions: []string{"Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.JoinGroupCall.All", "Calls.AccessMedia.All", "OnlineMeetings.ReadWrite.All", "CallRecords.Read.All"},
		CallbackURI: "http://127.0.0.1:9000/callback",
		MediaMode:   "app", // both kinds of media: the samples include app-hosted ones (echo, speakers)
		Numbers:     []Number{{Number: DevAppNumber}},
	}}
	c.Console.Users = []ConsoleUser{{Name: DevOperator, Password: DevOperatorPassword}}
	return c
}
