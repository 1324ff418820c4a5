package graphapi

import (
	"net/http"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/admission"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func methodNotAllowed(r *http.Request) error {
	return errs.E(errs.MethodNotAllowed, "The %s method is not allowed on this resource.", r.Method)
}

// base is the public URL of the Graph version the request used.
func (s *Server) base(r *http.Request) string {
	v := "/v1.0"
	if strings.HasPrefix(r.URL.Path, "/beta/") {
		v = "/beta"
	}
	return s.cfg.HTTP.PublicURL + v
}

func (s *Server) calls(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	if s.draining.Load() {
		// Only new calls are refused: the calls the drain lets finish are
		// still driven by their bots.
		s.o.Admission.Count(admission.Graph, admission.ReasonStopping)
		return errs.E(errs.Unavailable, "This Switchboard node is shutting down and takes no new calls; retry on another node.")
	}
	// The node's own load (calls.maxConcurrent, calls.overload): 503 with
	// Retry-After, before the body is read.
	if r := s.o.Admission.Admit(admission.Graph); r != nil {
		return r
	}
	var req graph.Call
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.ODataType != "" && !strings.EqualFold(req.ODataType, graph.TypeCall) {
		return errs.E(errs.BadRequest, "@odata.type: %q is not #microsoft.graph.call.", req.ODataType)
	}
	call, err := s.o.Calls.Create(r.Context(), c, &req)
	if err != nil {
		return err
	}
	call.ODataContext = s.base(r) + "/$metadata#app/calls/$entity"
	w.Header().Set("Location", s.base(r)+"/communications/calls/"+call.ID)
	writeJSON(w, http.StatusCreated, call)
	return nil
}

func (s *Server) call(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet:
		call, err := s.o.Calls.Get(r.Context(), c, id)
		if err != nil {
			return err
		}
		call.ODataContext = s.base(r) + "/$metadata#communications/calls/$entity"
		writeJSON(w, http.StatusOK, call)
		return nil
	case http.MethodDelete:
		if _, err := s.o.Calls.Do(r.Context(), c, id, "", callctl.HangUp, nil); err != nil {
			return err
		}
		w.WriteHeader(callctl.HangUp.Status)
		return nil
	}
	return methodNotAllowed(r)
}

// action serves POST /communications/calls/{id}/{action}; the OData
// namespaced form microsoft.graph.{action} is accepted too.
func (s *Server) action(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	switch r.PathValue("action") {
	case "operations", "participants":
		return methodNotAllowed(r) // collections without GET-all support
	}
	x, ok := callctl.LookupAction(r.PathValue("action"), false)
	if !ok {
		return errs.E(errs.BadRequest, "Resource not found for the segment '%s'.", r.PathValue("action"))
	}
	return s.do(w, r, c, x, "")
}

// do decodes an action's request and runs it: the answer is the
// operation when the action returns one, else an empty body.
func (s *Server) do(w http.ResponseWriter, r *http.Request, c callctl.Caller, x *callctl.Action, pid string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	req := x.NewRequest()
	if err := decode(r, req); err != nil {
		return err
	}
	id := r.PathValue("id")
	op, err := s.o.Calls.Do(r.Context(), c, id, pid, x, req)
	if err != nil {
		return err
	}
	if op == nil {
		w.WriteHeader(x.Status)
		return nil
	}
	s.writeOperation(w, r, id, op, x.Status)
	return nil
}

// writeOperation answers an action that returns an operation.
func (s *Server) writeOperation(w http.ResponseWriter, r *http.Request, callID string, op *graph.Operation, status int) {
	out := *op
	out.ODataContext = s.base(r) + "/$metadata#" + strings.TrimPrefix(op.ODataType, "#microsoft.graph.")
	w.Header().Set("Location", s.base(r)+"/communications/calls/"+callID+"/operations/"+op.ID)
	writeJSON(w, status, &out)
}

func (s *Server) operation(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	op, err := s.o.Calls.Operation(r.Context(), c, r.PathValue("id"), r.PathValue("op"))
	if err != nil {
		return err
	}
	op.ODataContext = s.base(r) + "/$metadata#communications/calls('" + r.PathValue("id") + "')/operations/$entity"
	writeJSON(w, http.StatusOK, op)
	return nil
}

func (s *Server) participants(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	id := r.PathValue("id")
	ps, err := s.o.Calls.Participants(r.Context(), c, id)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []graph.Participant{}
	}
	writeJSON(w, http.StatusOK, struct {
		Context string              `json:"@odata.context"`
		Value   []graph.Participant `json:"value"`
	}{s.base(r) + "/$metadata#communications/calls('" + id + "')/participants", ps})
	return nil
}

func (s *Server) participant(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	if r.Method == http.MethodPost {
		// POST .../participants/invite: an action on the collection.
		x, ok := callctl.LookupAction("participants/"+strings.TrimPrefix(r.PathValue("pid"), "microsoft.graph."), false)
		if !ok {
			return methodNotAllowed(r)
		}
		return s.do(w, r, c, x, "")
	}
	if r.Method == http.MethodDelete {
		if _, err := s.o.Calls.Do(r.Context(), c, r.PathValue("id"), r.PathValue("pid"), callctl.RemoveParticipant, nil); err != nil {
			return err
		}
		w.WriteHeader(callctl.RemoveParticipant.Status)
		return nil
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	id := r.PathValue("id")
	p, err := s.o.Calls.Participant(r.Context(), c, id, r.PathValue("pid"))
	if err != nil {
		return err
	}
	out := *p
	out.ODataContext = s.base(r) + "/$metadata#communications/calls('" + id + "')/participants/$entity"
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// participantAction serves POST /communications/calls/{id}/participants/
// {pid}/{action}
// (https://learn.microsoft.com/graph/api/resources/participant), bare or
// microsoft.graph.-prefixed.
func (s *Server) participantAction(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	x, ok := callctl.LookupAction(r.PathValue("action"), true)
	if !ok {
		return errs.E(errs.NotFound, "Resource not found for the segment '%s'.", r.PathValue("action"))
	}
	return s.do(w, r, c, x, r.PathValue("pid"))
}
