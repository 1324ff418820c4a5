package simulated

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// Routes registers the control API under /simulator/v1/. It is meant for
// tests and demos on a trusted network: it has no authentication, so it is
// only mounted when simulator.enabled is set (serve --dev sets it).
//
//	POST   /simulator/v1/calls            {"from","to","dtmf","dtmfInterval","hangUpAfter"} → 201 leg
//	GET    /simulator/v1/calls[?callId=]  → {"value":[leg...]}
//	GET    /simulator/v1/calls/{id}       → leg; ?waitFor=connected|ended&timeout=10s blocks until then
//	POST   /simulator/v1/calls/{id}/keys  {"keys":"12#","interval":"300ms"} → 202
//	DELETE /simulator/v1/calls/{id}       → 204 (the simulated user hangs up)
//
// With simulator.audio (the default) the user has a real RTP handset:
//
//	GET    /simulator/v1/calls/{id}/audio → audio/wav: what the user has heard (8 kHz mono)
//	POST   /simulator/v1/calls/{id}/say   body: any WAV → 202, the user says it
func (e *Endpoint) Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /simulator/v1/calls/{id}/audio", e.handleAudio)
	mux.HandleFunc("POST /simulator/v1/calls/{id}/say", e.handleSay)
	mux.HandleFunc("POST /simulator/v1/calls", e.handleCall)
	mux.HandleFunc("GET /simulator/v1/calls", e.handleList)
	mux.HandleFunc("GET /simulator/v1/calls/{id}", e.handleGet)
	mux.HandleFunc("POST /simulator/v1/calls/{id}/keys", e.handleKeys)
	mux.HandleFunc("DELETE /simulator/v1/calls/{id}", e.handleHangUp)
}

type callBody struct {
	From         string `json:"from"`
	To           string `json:"to"`
	DTMF         string `json:"dtmf"`
	DTMFInterval string `json:"dtmfInterval"`
	HangUpAfter  string `json:"hangUpAfter"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) { errs.WriteGraph(w, err, time.Now(), nil) }

func parseDur(s, field string) (config.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errs.E(errs.BadRequest, "%s: %q is not a duration such as 300ms or 10s", field, s)
	}
	return config.Duration(d), nil
}

func (e *Endpoint) handleCall(w http.ResponseWriter, r *http.Request) {
	var b callBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&b); err != nil {
		writeErr(w, errs.E(errs.BadRequest, "malformed JSON body: %v", err))
		return
	}
	var o CallOptions
	o.From, o.To = b.From, b.To
	if b.DTMF != "" || b.DTMFInterval != "" || b.HangUpAfter != "" {
		iv, err := parseDur(b.DTMFInterval, "dtmfInterval")
		if err != nil {
			writeErr(w, err)
			return
		}
		hu, err := parseDur(b.HangUpAfter, "hangUpAfter")
		if err != nil {
			writeErr(w, err)
			return
		}
		o.Simulation = &config.Simulation{DTMF: b.DTMF, DTMFInterval: iv, HangUpAfter: hu}
	}
	l, err := e.Call(r.Context(), o)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, l.State())
}

func (e *Endpoint) handleList(w http.ResponseWriter, r *http.Request) {
	legs := e.Legs(r.URL.Query().Get("callId"))
	out := make([]LegState, 0, len(legs))
	for _, l := range legs {
		out = append(out, l.State())
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (e *Endpoint) leg(w http.ResponseWriter, r *http.Request) *Leg {
	l, ok := e.Leg(r.PathValue("id"))
	if !ok {
		writeErr(w, errs.E(errs.NotFound, "no simulated leg %q", r.PathValue("id")))
		return nil
	}
	return l
}

func (e *Endpoint) handleGet(w http.ResponseWriter, r *http.Request) {
	l := e.leg(w, r)
	if l == nil {
		return
	}
	want := r.URL.Query().Get("waitFor")
	if want != "" {
		d, err := parseDur(r.URL.Query().Get("timeout"), "timeout")
		if err != nil {
			writeErr(w, err)
			return
		}
		if d == 0 {
			d = config.Duration(10 * time.Second)
		}
		timer := time.NewTimer(d.D())
		defer timer.Stop()
		for {
			ch := l.Changed()
			st := l.State().State
			if st == want || st == "ended" {
				break
			}
			select {
			case <-ch:
				continue
			case <-timer.C:
				writeErr(w, errs.E(errs.Conflict, "leg is %s, not %s, after %s", st, want, d.D()))
				return
			case <-r.Context().Done():
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, l.State())
}

func (e *Endpoint) handleKeys(w http.ResponseWriter, r *http.Request) {
	l := e.leg(w, r)
	if l == nil {
		return
	}
	var b struct {
		Keys     string `json:"keys"`
		Interval string `json:"interval"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&b); err != nil {
		writeErr(w, errs.E(errs.BadRequest, "malformed JSON body: %v", err))
		return
	}
	iv, err := parseDur(b.Interval, "interval")
	if err != nil {
		writeErr(w, err)
		return
	}
	if iv == 0 {
		iv = config.Duration(DefaultDTMFInterval)
	}
	if err := l.PressKeys(b.Keys, iv.D()); err != nil {
		writeErr(w, errs.Wrap(errs.Conflict, err, "%v", err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (e *Endpoint) handleHangUp(w http.ResponseWriter, r *http.Request) {
	l := e.leg(w, r)
	if l == nil {
		return
	}
	l.HangUpNow()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Endpoint) handleAudio(w http.ResponseWriter, r *http.Request) {
	l := e.leg(w, r)
	if l == nil {
		return
	}
	if !l.HasAudio() {
		writeErr(w, errs.E(errs.Conflict, "the simulated user has no audio: simulator.audio is off"))
		return
	}
	wav := prompt.EncodeWAV(l.Heard(), media.SampleRate)
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Content-Length", strconv.Itoa(len(wav)))
	_, _ = w.Write(wav)
}

func (e *Endpoint) handleSay(w http.ResponseWriter, r *http.Request) {
	l := e.leg(w, r)
	if l == nil {
		return
	}
	pcm, err := prompt.DecodeWAV(http.MaxBytesReader(w, r.Body, 32<<20))
	if err != nil {
		writeErr(w, errs.E(errs.BadRequest, "the body is not a usable WAV file: %v", err))
		return
	}
	if err := l.Say(pcm); err != nil {
		writeErr(w, errs.Wrap(errs.Conflict, err, "%v", err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
