// Package msgraph is Switchboard's compatibility suite for Microsoft's own
// Go client, github.com/microsoftgraph/msgraph-sdk-go. Its tests build and
// start a real `switchboard serve` process on loopback, point an unmodified
// GraphServiceClient at it (only the request adapter's base URL and a
// client-credentials token provider are configured), play the bot's webhook
// themselves, and assert on the typed models the client parses.
//
// It is a module of its own because the client is huge: compiling it takes
// minutes and gigabytes of memory, which the main module's tests should not
// pay for. See docs/msgraph-compat.md.
package msgraph
