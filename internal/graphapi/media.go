package graphapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/mediasock"
)

// mediaSocket serves GET .../calls/{id}/media: the media socket of an
// app-hosted call (docs/media-socket.md). Who may open it is checked
// before the upgrade, with the call's Graph error bodies; the socket
// itself is package mediasock's.
func (s *Server) mediaSocket(w http.ResponseWriter, r *http.Request) {
	// Clients that cannot set headers (browsers) send the token in the
	// query.
	if r.Header.Get("Authorization") == "" {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	p, err := s.o.Identity.Authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.throttle(p.AppID + "|" + p.TenantID); err != nil {
		s.writeError(w, r, err)
		return
	}
	c := callctl.Caller{TenantID: p.TenantID, AppID: p.AppID, Roles: p.Roles}
	id := r.PathValue("id")
	err = s.o.Calls.OpenMedia(r.Context(), c, id)
	var away *callctl.Elsewhere
	if err != nil && !errors.As(err, &away) {
		s.writeError(w, r, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.writeError(w, r, errs.E(errs.BadRequest,
			"%s is the call's media socket: open it as a WebSocket (Upgrade: websocket, subprotocol %s).", r.URL.Path, mediasock.Protocol))
		return
	}
	if away != nil {
		// Another node carries the call: hand it the upgrade
		// (mediaproxy.go), unless another node already did.
		if s.o.NodeURL == nil || r.Header.Get(proxiedHeader) != "" {
			s.writeError(w, r, err)
			return
		}
		s.proxyMedia(w, r, away)
		return
	}
	mediasock.Serve(w, r, func(sock callctl.MediaSocket) (func(), error) {
		return s.o.Calls.AttachMedia(c, id, sock)
	}, mediasock.Options{Logger: s.log.With("call", id)})
}
