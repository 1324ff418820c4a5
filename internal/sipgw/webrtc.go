package sipgw

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
)

// WebRTC legs: an INVITE whose offer is WebRTC's (RTP/SAVPF, DTLS
// fingerprint, ICE) is answered by the WebRTC gateway, which relays the
// decrypted RTP to the leg's ordinary media session; from there the call
// is like any other SIP leg.

// answerWebRTC has the WebRTC gateway answer a browser's offer. The
// remoteMedia it returns points the media session at the peer's relay.
func (g *Gateway) answerWebRTC(offer []byte) (*webrtcgw.Peer, remoteMedia, error) {
	if g.rtc == nil {
		return nil, remoteMedia{}, errors.New("WebRTC media is not enabled on this node (webrtc.enabled)")
	}
	ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
	defer cancel()
	p, err := g.rtc.Answer(ctx, offer)
	if err != nil {
		return nil, remoteMedia{}, err
	}
	return p, remoteMedia{addr: p.RelayAddr(), codec: p.Codec(), dtmfPT: p.DTMFPayloadType(), dir: dirSendRecv}, nil
}

// offerWebRTC makes the WebRTC offer of an outgoing call to a browser's
// contact; the peer relays to the media session at sess.
func (g *Gateway) offerWebRTC(sess netip.AddrPort) (*webrtcgw.Peer, error) {
	if g.rtc == nil {
		return nil, errors.New("WebRTC media is not enabled on this node (webrtc.enabled)")
	}
	ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
	defer cancel()
	p, err := g.rtc.Offer(ctx)
	if err != nil {
		return nil, err
	}
	p.Connect(sess)
	return p, nil
}

// answeredWebRTC applies a browser's answer to our offer.
func answeredWebRTC(p *webrtcgw.Peer, answer []byte) (remoteMedia, error) {
	if err := p.SetAnswer(answer); err != nil {
		return remoteMedia{}, err
	}
	return remoteMedia{addr: p.RelayAddr(), codec: p.Codec(), dtmfPT: p.DTMFPayloadType(), dir: dirSendRecv}, nil
}

// closeBranchPeers closes the WebRTC peers of an outgoing leg's branches
// (the winner's is the leg's own, closed with it).
func (l *Leg) closeBranchPeers() {
	if l.out == nil {
		return
	}
	l.mu.Lock()
	var peers []*webrtcgw.Peer
	for _, b := range l.out.branches {
		if b.rtc != nil {
			peers = append(peers, b.rtc)
		}
	}
	l.mu.Unlock()
	for _, p := range peers {
		_ = p.Close()
	}
}

// modifyWebRTC answers a re-INVITE or UPDATE with a WebRTC offer on a
// WebRTC leg: pion answers it on the same peer, and the media session
// takes the offer's direction (a browser's hold is sendonly, or inactive:
// nothing is sent to it, and its silence is not a vanished phone). An
// offerless re-INVITE (our offer in the 200, its answer in the ACK), a
// plain RTP offer, or one that changes the codec, is refused with 488 and
// the call goes on as it was.
func (l *Leg) modifyWebRTC(req *sip.Request, tx sip.ServerTransaction) {
	g := l.g
	body := req.Body()
	switch {
	case len(body) == 0:
		g.respond(tx, req, 488, "Not Acceptable Here", warning("a re-INVITE of a WebRTC call needs an offer"))
		return
	case !webrtcgw.IsWebRTC(body):
		g.respond(tx, req, 488, "Not Acceptable Here", warning("a WebRTC call stays WebRTC"))
		return
	}
	if ct := req.ContentType(); ct != nil && !strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") {
		g.respond(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
		return
	}
	ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
	answer, dir, err := l.rtc.Renegotiate(ctx, body)
	cancel()
	if err != nil {
		g.respond(tx, req, 488, "Not Acceptable Here", warning(err.Error()))
		return
	}
	l.mu.Lock()
	rm := l.remote
	rm.dir = dir
	l.remote = rm
	l.refreshTarget(req)
	l.mu.Unlock()
	l.applyRemote(rm)
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	res.AppendHeader(g.contact(req.Transport()))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	if req.Method == sip.UPDATE {
		if err := tx.Respond(res); err != nil {
			l.lg().Debug("respond UPDATE", "err", err)
		}
		return
	}
	l.answerInvite(tx, req, res)
}

// byeGrace is how long a closed WebRTC peer waits for its BYE.
const byeGrace = time.Second

// watchWebRTC ends an established WebRTC leg whose peer connection fails
// (ICE or DTLS, or a page that went away and stopped answering consent
// checks): a BYE goes out and the call hears of a media failure. A page
// that hangs up closes its peer connection and sends its BYE at once,
// over different transports: the BYE has a moment to arrive and end the
// call as the far end's hang-up.
func (l *Leg) watchWebRTC() {
	p := l.rtc
	if p == nil {
		return
	}
	go func() {
		<-p.Done()
		grace := time.NewTimer(byeGrace)
		defer grace.Stop()
		select {
		case <-l.done:
			return
		case <-grace.C:
		}
		l.mu.Lock()
		live := !l.finished && l.state == stateEstablished
		l.mu.Unlock()
		if live {
			l.lg().Info("webrtc media failed: ending the call")
			l.trace(callctl.TraceMedia, "media failure: the browser's WebRTC connection failed (ICE consent or DTLS)")
			l.hangUpEstablished(errs.MediaFailure, true)
		}
	}()
}
