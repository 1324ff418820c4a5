package rtcphone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone is a SIP-over-WebSocket user agent the way browser softphones are:
// one WebSocket to the node ({http}/sip/ws), an unreachable Contact host
// (…invalid;transport=ws) so that the node must send everything back over
// that socket, digest credentials, and WebRTC media for each call.
type Phone struct {
	// Node is the node's HTTP host:port; User and Password its credentials;
	// Domain the SIP domain (the Request-URI host of REGISTER).
	Node, User, Password, Domain string
	// DisplayName, when set, is the From display name of its calls (a
	// join page's guest's name).
	DisplayName string

	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	srv     *sipgo.Server
	dialogs *sipgo.DialogClientCache
	contact sip.ContactHeader
	ws      *sip.TransportWS

	mu       sync.Mutex
	incoming chan *Incoming
	answered map[string]*sipgo.DialogServerSession
	servers  *sipgo.DialogServerCache
}

// Incoming is a call the node rang the phone with.
type Incoming struct {
	Offer   []byte
	session *sipgo.DialogServerSession
	phone   *Phone
	done    chan struct{}
}

// NewPhone starts a user agent for user at the node's HTTP address node.
func NewPhone(node, domain, user, password string, log *slog.Logger) (*Phone, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Phone{Node: node, User: user, Password: password, Domain: domain,
		incoming: make(chan *Incoming, 4), answered: map[string]*sipgo.DialogServerSession{}}
	p.ws = &sip.TransportWS{DialURI: func(addr string) string { return "ws://" + addr + "/sip/ws" }}
	var err error
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("rtcphone"),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(log),
			sip.WithTransportLayerTransports(sip.TransportsConfig{WS: p.ws})),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	host := hex.EncodeToString(b[:]) + ".invalid"
	p.cli, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(host), sipgo.WithClientLogger(log))
	if err == nil {
		p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(log))
	}
	if err != nil {
		p.ua.Close()
		return nil, err
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host, UriParams: sip.NewParams()}}
	p.contact.Address.UriParams.Add("transport", "ws")
	p.dialogs = sipgo.NewDialogClientCache(p.cli, p.contact)
	p.servers = sipgo.NewDialogServerCache(p.cli, p.contact)
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.dialogs.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.servers.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.servers.ReadAck(req, tx) })
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		s, err := p.servers.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
			return
		}
		in := &Incoming{Offer: req.Body(), session: s, phone: p, done: make(chan struct{})}
		_ = s.Respond(180, "Ringing", nil)
		select {
		case p.incoming <- in:
		default:
			_ = s.Respond(486, "Busy Here", nil)
			return
		}
		// sipgo ends the transaction when the handler returns: wait for
		// the test to answer or refuse.
		select {
		case <-in.done:
		case <-tx.Done():
		}
	})
	p.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	return p, nil
}

// Close ends the user agent (and its WebSocket).
func (p *Phone) Close() { p.ua.Close() }

func (p *Phone) nodeURI(user string) sip.Uri {
	host, port, _ := net.SplitHostPort(p.Node)
	n, _ := strconv.Atoi(port)
	u := sip.Uri{Scheme: "sip", User: user, Host: host, Port: n, UriParams: sip.NewParams()}
	u.UriParams.Add("transport", "ws")
	return u
}

// Register sends REGISTER (answering the digest challenge) and returns
// the final status.
func (p *Phone) Register(ctx context.Context, expires int) (int, error) {
	to := sip.Uri{Scheme: "sip", User: p.User, Host: p.Domain}
	req := sip.NewRequest(sip.REGISTER, p.nodeURI(""))
	req.Recipient.User = ""
	req.Recipient.Host = p.Domain
	req.SetDestination(p.Node)
	req.SetTransport("WS")
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.AppendHeader(&sip.FromHeader{Address: to, Params: tagged()})
	c := p.contact
	req.AppendHeader(&c)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.User, Password: p.Password})
		if err != nil {
			return 0, err
		}
	}
	return res.StatusCode, nil
}

// Call is an outgoing call of the phone.
type Call struct {
	Media   *Media
	session *sipgo.DialogClientSession
}

// Call dials user (a number or SIP user) at the node with the given SDP
// body (nil: the phone's own WebRTC offer) and waits for the answer. A
// refusal returns its status with a nil Call.
func (p *Phone) Call(ctx context.Context, user string, body []byte) (*Call, int, error) {
	m, err := NewMedia()
	if err != nil {
		return nil, 0, err
	}
	if body == nil {
		if body, err = m.Offer(ctx); err != nil {
			m.Close()
			return nil, 0, err
		}
	}
	recipient := p.nodeURI(user)
	from := &sip.FromHeader{DisplayName: p.DisplayName, Address: sip.Uri{Scheme: "sip", User: p.User, Host: p.Domain}, Params: tagged()}
	s, err := p.dialogs.Invite(ctx, recipient, body, from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		m.Close()
		return nil, 0, err
	}
	status := 0
	err = s.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.User, Password: p.Password,
		OnResponse: func(res *sip.Response) error { status = res.StatusCode; return nil }})
	var ew *sipgo.ErrDialogResponse
	if errors.As(err, &ew) {
		m.Close()
		_ = s.Close()
		return nil, ew.Res.StatusCode, nil
	}
	if err != nil {
		m.Close()
		_ = s.Close()
		return nil, status, err
	}
	if err := m.SetAnswer(s.InviteResponse.Body()); err != nil {
		m.Close()
		_ = s.Bye(ctx)
		return nil, 200, fmt.Errorf("rtcphone: the node's answer: %w", err)
	}
	if err := s.Ack(ctx); err != nil {
		m.Close()
		return nil, 200, err
	}
	return &Call{Media: m, session: s}, 200, nil
}

// ReInvite sends a re-INVITE in the call's dialog with body (a hold, say;
// none for an offerless one) and returns the final status.
func (c *Call) ReInvite(ctx context.Context, body []byte) (int, error) {
	code, _, err := c.ReInviteAnswer(ctx, body)
	return code, err
}

// ReInviteAnswer is ReInvite returning the answer's body too. The phone's
// own peer connection does not take the answer: the test plays the far
// end's part in SDP only.
func (c *Call) ReInviteAnswer(ctx context.Context, body []byte) (int, []byte, error) {
	req := sip.NewRequest(sip.INVITE, c.session.InviteRequest.Recipient)
	if len(body) > 0 {
		req.SetBody(body)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	res, err := c.session.Do(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	if res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, req.Recipient)
		_ = c.session.WriteRequest(ack)
	}
	return res.StatusCode, res.Body(), nil
}

// Done is closed when the call's dialog ends (either side's BYE).
func (c *Call) Done() <-chan struct{} { return c.session.Context().Done() }

// HangUp sends BYE and closes the media.
func (c *Call) HangUp(ctx context.Context) error {
	err := c.session.Bye(ctx)
	c.Media.Close()
	_ = c.session.Close()
	return err
}

// Ringing returns the next call the node rings the phone with.
func (p *Phone) Ringing(ctx context.Context) (*Incoming, error) {
	select {
	case in := <-p.incoming:
		return in, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Answer answers an incoming call with the phone's WebRTC media.
func (in *Incoming) Answer(ctx context.Context) (*Media, error) {
	defer close(in.done)
	m, err := NewMedia()
	if err != nil {
		return nil, err
	}
	ans, err := m.Answer(ctx, in.Offer)
	if err != nil {
		m.Close()
		_ = in.session.Respond(488, "Not Acceptable Here", nil)
		return nil, err
	}
	if err := in.session.RespondSDP(ans); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Done is closed when the incoming call's dialog ends.
func (in *Incoming) Done() <-chan struct{} { return in.session.Context().Done() }

// HangUp ends an answered incoming call with a BYE, sent along the
// dialog's route set (its Record-Route), and waits for its answer.
func (in *Incoming) HangUp(ctx context.Context) error {
	err := in.session.Bye(ctx)
	_ = in.session.Close()
	return err
}

func tagged() sip.HeaderParams {
	p := sip.NewParams()
	p.Add("tag", sip.GenerateTagN(8))
	return p
}
