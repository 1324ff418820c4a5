// Package sdk is the Go SDK for calling bots on Switchboard or Microsoft
// Graph's cloud-communications API. It is to Go what Microsoft's .NET
// Graph Communications SDK is to C#: a client for the API, and the
// receiving end of the platform's notifications, with the state of every
// call kept for the bot.
//
// Three types do the work:
//
//   - Client calls the API as an application: client-credentials tokens
//     (cached, refreshed before expiry, one request at a time), a typed
//     method per call, participant and media action, *GraphError failures,
//     429/503 retried as Retry-After says.
//   - Handler is the http.Handler for the bot's callback URL. It validates
//     each notification's signed token, answers 202, merges the
//     (often partial) notifications into State, sends keepAlives while
//     calls are up, and runs the bot's callbacks — OnIncomingCall,
//     OnCallUpdated, OnParticipants, OnOperation, OnTerminated — in order
//     per call, each call on its own goroutine.
//   - Call is the handle on one call: its merged snapshot, its DTMF tones
//     (Tones), waits (WaitState, Await, Done) and its actions (Answer,
//     PlayPrompt, RecordResponse, SubscribeToTone, HangUp…).
//
// The waits read State, which changes as notifications arrive, not as
// callbacks run, so a bot can be written as straight-line code inside
// OnIncomingCall: answer, wait until established, play a menu, read a
// digit, act on it. See the package example.
//
// Await follows Graph's operation rule
// (https://learn.microsoft.com/graph/api/resources/commsoperation): an action
// whose response is already completed or failed gets no notification, so
// Await returns at once; otherwise it returns on the operation's deleted
// notification, even one that arrived before Await was called.
//
// Online meetings: Client creates them for a user (CreateMeeting, Meet
// Now without dates; CreateOrGetMeeting by an external id), reads,
// finds (by join link or meeting id), updates and deletes them. A bot
// joins one with Handler.JoinMeetingByURL (the link taken apart by
// ParseJoinURL, as Microsoft's samples do) or Handler.JoinMeetingByID;
// OnParticipants then reports everyone in the meeting, and Call.Admit
// lets in those waiting in the lobby.
//
// Application-hosted media: a call created or answered with
// appHostedMediaConfig has its audio on a WebSocket, the media socket
// (docs/media-socket.md). Call.OpenMedia (or Client.OpenMedia) opens it
// and returns a MediaSocket: ReadFrame fills a reused MediaFrame (20 ms of
// 16 kHz PCM of the mix or of one participant) without allocating, WritePCM
// and WriteBytes send the bot's audio, Subscribe asks for participants'
// own streams, Events reports the roster, the dominant speaker, DTMF,
// stats and the call's end, and a socket that drops while the call is up
// is reopened.
//
// Against Switchboard, BaseURL is the node's public URL plus /v1.0 and the
// token endpoint and notification keys are found on the same host; against
// Microsoft Graph they default to Microsoft's. The wire types are in
// sdk/graph; Switchboard itself uses the same types. The SDK never imports
// Switchboard's internal packages.
package sdk
