package graphapi

import (
	"net/http"
	"strings"

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
		if err := s.o.Calls.HangUp(r.Context(), c, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r)
}

// action serves POST /communications/calls/{id}/{action}; the OData
// namespaced form microsoft.graph.{action} is accepted too.
func (s *Server) action(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	id := r.PathValue("id")
	name := r.PathValue("action")
	name = strings.TrimPrefix(name, "microsoft.graph.")
	switch name {
	case "operations", "participants":
		return methodNotAllowed(r) // collections without GET-all support
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	ctx := r.Context()
	switch name {
	case "answer":
		var req graph.AnswerRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if err := s.o.Calls.Answer(ctx, c, id, &req); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	case "reject":
		var req graph.RejectRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if err := s.o.Calls.Reject(ctx, c, id, &req); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	case "redirect":
		var req graph.RedirectRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		if err := s.o.Calls.Redirect(ctx, c, id, &req); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	case "keepAlive":
		if err := decode(r, &struct{}{}); err != nil {
			return err
		}
		if err := s.o.Calls.KeepAlive(ctx, c, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	case "mute", "unmute", "subscribeToTone":
		var req graph.ClientContextRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		var op *graph.Operation
		var err error
		switch name {
		case "mute":
			op, err = s.o.Calls.Mute(ctx, c, id, &req)
		case "unmute":
			op, err = s.o.Calls.Unmute(ctx, c, id, &req)
		default:
			op, err = s.o.Calls.SubscribeToTone(ctx, c, id, &req)
		}
		if err != nil {
			return err
		}
		s.writeOperation(w, r, id, op, http.StatusOK)
		return nil
	case "sendDtmfTones":
		var req graph.SendDtmfTonesRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err := s.o.Calls.SendDtmfTones(ctx, c, id, &req)
		if err != nil {
			return err
		}
		s.writeOperation(w, r, id, op, http.StatusOK)
		return nil
	case "playPrompt":
		var req graph.PlayPromptRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err := s.o.Calls.PlayPrompt(ctx, c, id, &req)
		if err != nil {
			return err
		}
		s.writeOperation(w, r, id, op, http.StatusOK)
		return nil
	case "recordResponse":
		var req graph.RecordResponseRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err := s.o.Calls.RecordResponse(ctx, c, id, &req)
		if err != nil {
			return err
		}
		s.writeOperation(w, r, id, op, http.StatusOK)
		return nil
	case "cancelMediaProcessing":
		var req graph.ClientContextRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err := s.o.Calls.CancelMediaProcessing(ctx, c, id, &req)
		if err != nil {
			return err
		}
		s.writeOperation(w, r, id, op, http.StatusOK)
		return nil
	case "transfer", "updateRecordingStatus",
		"changeScreenSharingRole", "addLargeGalleryView":
		// Check the call exists and is the caller's before saying what is missing.
		if _, err := s.o.Calls.Get(ctx, c, id); err != nil {
			return err
		}
		return errs.E(errs.NotSupported, "%s is not supported by this Switchboard version yet.", name)
	}
	return errs.E(errs.BadRequest, "Resource not found for the segment '%s'.", r.PathValue("action"))
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
	if r.Method != http.MethodGet {
		if r.Method == http.MethodDelete {
			return errs.E(errs.NotSupported, "Removing a participant from a two-party call is not supported; hang up the call instead.")
		}
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
// {pid}/{action} (graph-calls.md §3), bare or microsoft.graph.-prefixed.
func (s *Server) participantAction(w http.ResponseWriter, r *http.Request, c callctl.Caller) error {
	id, pid := r.PathValue("id"), r.PathValue("pid")
	name := strings.TrimPrefix(r.PathValue("action"), "microsoft.graph.")
	switch name {
	case "startHoldMusic", "stopHoldMusic":
	default:
		return errs.E(errs.NotFound, "Resource not found for the segment '%s'.", r.PathValue("action"))
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	ctx := r.Context()
	var op *graph.Operation
	var err error
	if name == "startHoldMusic" {
		var req graph.StartHoldMusicRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err = s.o.Calls.StartHoldMusic(ctx, c, id, pid, &req)
	} else {
		var req graph.ClientContextRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		op, err = s.o.Calls.StopHoldMusic(ctx, c, id, pid, &req)
	}
	if err != nil {
		return err
	}
	// 202 with the running operation and its Location (§3.4, §12.1).
	s.writeOperation(w, r, id, op, http.StatusAccepted)
	return nil
}
