package graphapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/meetings"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// meetingRoutes serves onlineMeetings
// (https://learn.microsoft.com/graph/api/resources/onlinemeeting) for
// application tokens: /users/{userId}/onlineMeetings (create, createOrGet,
// get, update, delete, $filter lookups) and the lookups of
// /communications/onlineMeetings, under v1.0 and beta. /me answers as
// Graph does for an application token.
func (s *Server) meetingRoutes() {
	if s.o.Meetings == nil {
		return
	}
	for _, v := range []string{"/v1.0", "/beta"} {
		s.route(v+"/users/{user}/onlineMeetings", "onlineMeetings", s.onlineMeetings)
		s.route(v+"/users/{user}/onlineMeetings/createOrGet", "onlineMeetingsCreateOrGet", s.onlineMeetingsCreateOrGet)
		s.route(v+"/users/{user}/onlineMeetings/microsoft.graph.createOrGet", "onlineMeetingsCreateOrGet", s.onlineMeetingsCreateOrGet)
		s.route(v+"/users/{user}/onlineMeetings/{id}", "onlineMeeting", s.onlineMeeting)
		s.route(v+"/communications/onlineMeetings", "communicationsOnlineMeetings", s.communicationsOnlineMeetings)
		s.route(v+"/communications/onlineMeetings/{$}", "communicationsOnlineMeetings", s.communicationsOnlineMeetings)
		s.route(v+"/me/onlineMeetings", "meOnlineMeetings", s.meOnlineMeetings)
		s.route(v+"/me/onlineMeetings/{rest...}", "meOnlineMeetings", s.meOnlineMeetings)
	}
}

func meetingCaller(c callctl.Caller) meetings.Caller {
	return meetings.Caller{TenantID: c.TenantID, AppID: c.AppID, Roles: c.Roles}
}

// meetingView reads the Prefer header: include-unknown-enum-members asks
// for the evolvable enum members by name.
func meetingView(r *http.Request) meetings.View {
	for _, p := range r.Header.Values("Prefer") {
		if strings.Contains(strings.ToLower(p), "include-unknown-enum-members") {
			return meetings.View{IncludeUnknownEnumMembers: true}
		}
	}
	return meetings.View{}
}

// userMeetingsContext is the @odata.context base of a user's meetings.
func (s *Server) userMeetingsContext(r *http.Request) string {
	return s.base(r) + "/$metadata#users('" + url.PathEscape(r.PathValue("user")) + "')/onlineMeetings"
}

// decodeMeeting reads an onlineMeeting body; an @odata.type, when sent,
// must be onlineMeeting's.
func decodeMeeting(r *http.Request) (*graph.OnlineMeeting, error) {
	var req graph.OnlineMeeting
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if t := strings.TrimPrefix(req.ODataType, "#"); t != "" && !strings.EqualFold(t, strings.TrimPrefix(graph.TypeOnlineMeeting, "#")) {
		return nil, errs.E(errs.BadRequest, "@odata.type: %q is not #microsoft.graph.onlineMeeting.", req.ODataType)
	}
	return &req, nil
}

func (s *Server) onlineMeetings(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	user := r.PathValue("user")
	switch r.Method {
	case http.MethodPost:
		req, err := decodeMeeting(r)
		if err != nil {
			return err
		}
		m, err := s.o.Meetings.Create(r.Context(), meetingCaller(c), user, req)
		if err != nil {
			return err
		}
		out := s.o.Meetings.Resource(m, meetingView(r))
		out.ODataContext = s.userMeetingsContext(r) + "/$entity"
		w.Header().Set("Location", s.base(r)+"/users/"+url.PathEscape(user)+"/onlineMeetings/"+m.ID)
		writeJSON(w, http.StatusCreated, out)
		return nil
	case http.MethodGet:
		found, err := s.o.Meetings.Find(r.Context(), meetingCaller(c), user, r.URL.Query().Get("$filter"))
		if err != nil {
			return err
		}
		s.writeMeetings(w, r, s.userMeetingsContext(r), found)
		return nil
	}
	return methodNotAllowed(r)
}

func (s *Server) writeMeetings(w http.ResponseWriter, r *http.Request, context string, found []*meetings.Meeting) {
	out := graph.OnlineMeetingCollection{ODataContext: context, Value: make([]graph.OnlineMeeting, 0, len(found))}
	v := meetingView(r)
	for _, m := range found {
		out.Value = append(out.Value, *s.o.Meetings.Resource(m, v))
	}
	writeJSON(w, http.StatusOK, &out)
}

// onlineMeetingsCreateOrGet serves POST …/onlineMeetings/createOrGet
// (https://learn.microsoft.com/graph/api/onlinemeeting-createorget): 201
// when it made the meeting, 200 when the externalId already had one.
func (s *Server) onlineMeetingsCreateOrGet(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	req, err := decodeMeeting(r)
	if err != nil {
		return err
	}
	m, created, err := s.o.Meetings.CreateOrGet(r.Context(), meetingCaller(c), r.PathValue("user"), req)
	if err != nil {
		return err
	}
	out := s.o.Meetings.Resource(m, meetingView(r))
	out.ODataContext = s.base(r) + "/$metadata#microsoft.graph.onlineMeeting"
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", s.base(r)+"/users/"+url.PathEscape(r.PathValue("user"))+"/onlineMeetings/"+m.ID)
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) onlineMeeting(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	user, id := r.PathValue("user"), r.PathValue("id")
	var m *meetings.Meeting
	var err error
	switch r.Method {
	case http.MethodGet:
		m, err = s.o.Meetings.Get(r.Context(), meetingCaller(c), user, id)
	case http.MethodPatch:
		var body map[string]json.RawMessage
		if err := decode(r, &body); err != nil {
			return err
		}
		m, err = s.o.Meetings.Update(r.Context(), meetingCaller(c), user, id, body)
	case http.MethodDelete:
		if err := s.o.Meetings.Delete(r.Context(), meetingCaller(c), user, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		return methodNotAllowed(r)
	}
	if err != nil {
		return err
	}
	out := s.o.Meetings.Resource(m, meetingView(r))
	out.ODataContext = s.userMeetingsContext(r) + "/$entity"
	writeJSON(w, http.StatusOK, out)
	return nil
}

// communicationsOnlineMeetings serves GET /communications/onlineMeetings
// with a $filter, the application-wide lookup.
func (s *Server) communicationsOnlineMeetings(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	found, err := s.o.Meetings.Find(r.Context(), meetingCaller(c), "", r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	s.writeMeetings(w, r, s.base(r)+"/$metadata#communications/onlineMeetings", found)
	return nil
}

// meOnlineMeetings answers /me/onlineMeetings as Graph does for an
// application token: /me needs a signed-in user, and Switchboard issues
// application tokens only.
func (s *Server) meOnlineMeetings(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	return errs.E(errs.BadRequest, "/me request is only valid with delegated authentication flow. Use /users/{userId}/onlineMeetings with an application token.")
}
