// Package archtest holds the tests that keep Switchboard's structure what
// STYLE.md says it is, the way tailscale's dependency and package-doc tests
// do: the public SDK under sdk/ never imports the module's internal
// packages, every package in the module has a package doc comment, and every
// exported field of config.Config, through all its nested structs, has a doc
// comment. A failure names the offending package, import or field.
//
// The package has no code besides its tests.
package archtest
