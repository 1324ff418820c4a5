// Package graph holds the Microsoft Graph cloud-communications wire types:
// calls, participants, identities, media configuration, operations,
// notifications and the Graph error body.
//
// These types are written once, here, and both the Switchboard server and
// bots built with the SDK use them. Field names, odata types and enum
// spellings follow the Graph v1.0 reference. Enum values parse
// case-insensitively (Graph's own payloads drift between "Running" and
// "running"); they are written as Graph's schema spells them: lower camel
// case, except operation statuses (NotStarted, Running, Completed, Failed).
package graph
