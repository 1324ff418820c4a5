package sipgw

import (
	"context"
	"errors"
	"net/netip"
	"time"

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

// watchWebRTC ends an established WebRTC leg whose peer connection fails
// (ICE or DTLS, or a page that went away and stopped answering consent
// checks): a BYE goes out and the call hears of a media failure.
func (l *Leg) watchWebRTC() {
	p := l.rtc
	if p == nil {
		return
	}
	go func() {
		<-p.Done()
		l.mu.Lock()
		live := !l.finished && l.state == stateEstablished
		l.mu.Unlock()
		if live {
			l.lg().Info("webrtc media failed: ending the call")
			l.hangUpEstablished(errs.MediaFailure, true)
		}
	}()
}
