// sip.js: a small SIP user agent over WebSocket (RFC 7118) with WebRTC
// media, written for Switchboard's /phone page and its tests. No
// dependencies: REGISTER and INVITE with digest (MD5, qop=auth), calls
// both ways, CANCEL, BYE, hold and resume by re-INVITE, keys as RFC 4733
// (RTCDTMFSender) or SIP INFO. The WebSocket is reliable, so there are no
// retransmissions.
'use strict';
(function (global) {

// --- MD5 (RFC 1321): digest needs it and SubtleCrypto has none. ---
function md5(text) {
  const bytes = new TextEncoder().encode(text);
  const n = ((bytes.length + 8) >> 6) + 1;
  const w = new Uint32Array(n * 16);
  for (let i = 0; i < bytes.length; i++) w[i >> 2] |= bytes[i] << ((i % 4) * 8);
  w[bytes.length >> 2] |= 0x80 << ((bytes.length % 4) * 8);
  w[n * 16 - 2] = (bytes.length * 8) >>> 0;
  w[n * 16 - 1] = Math.floor(bytes.length / 0x20000000);
  const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const K = new Uint32Array(64);
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 0x100000000);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  for (let blk = 0; blk < n * 16; blk += 16) {
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const s = S[(i >> 4) * 4 + (i % 4)];
      const t = (a + f + K[i] + w[blk + g]) >>> 0;
      a = d; d = c; c = b;
      b = (b + ((t << s) | (t >>> (32 - s)))) >>> 0;
    }
    a0 = (a0 + a) >>> 0; b0 = (b0 + b) >>> 0; c0 = (c0 + c) >>> 0; d0 = (d0 + d) >>> 0;
  }
  let hex = '';
  for (const v of [a0, b0, c0, d0]) for (let i = 0; i < 4; i++) hex += ((v >>> (i * 8)) & 0xff).toString(16).padStart(2, '0');
  return hex;
}

const rnd = (len = 10) => {
  const a = new Uint8Array(len);
  crypto.getRandomValues(a);
  return Array.from(a, b => (b % 36).toString(36)).join('');
};

// --- Messages ---
const compact = {v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type', k: 'supported'};

// parse turns a SIP message's text into {method, uri} or {status, reason},
// headers (lowercase names, in order, one entry per line) and body.
function parse(text) {
  const split = text.indexOf('\r\n\r\n');
  const head = (split < 0 ? text : text.slice(0, split)).split('\r\n');
  const body = split < 0 ? '' : text.slice(split + 4);
  const msg = {headers: [], body};
  const top = head.shift().split(' ');
  if (top[0] === 'SIP/2.0') {
    msg.status = +top[1];
    msg.reason = top.slice(2).join(' ');
  } else {
    msg.method = top[0];
    msg.uri = top[1];
  }
  for (const line of head) {
    if (/^[ \t]/.test(line) && msg.headers.length) { // folded
      msg.headers[msg.headers.length - 1][1] += ' ' + line.trim();
      continue;
    }
    const c = line.indexOf(':');
    if (c < 0) continue;
    let name = line.slice(0, c).trim().toLowerCase();
    name = compact[name] || name;
    msg.headers.push([name, line.slice(c + 1).trim()]);
  }
  msg.get = name => (msg.headers.find(h => h[0] === name) || [])[1] || '';
  msg.all = name => msg.headers.filter(h => h[0] === name).map(h => h[1]);
  return msg;
}

// build writes a request or response: top line, [name, value] headers, body.
function build(top, headers, body = '') {
  const lines = [top];
  for (const [k, v] of headers) lines.push(k + ': ' + v);
  lines.push('Content-Length: ' + new TextEncoder().encode(body).length, '', body);
  return lines.join('\r\n');
}

const tagOf = v => (/;\s*tag=([^;>\s]+)/i.exec(v.replace(/^.*>/, '>')) || [])[1] || '';
const uriOf = v => (v.includes('<') ? v.slice(v.indexOf('<') + 1, v.indexOf('>')) : v.split(';')[0]).trim();
const cseqOf = m => { const [n, meth] = m.get('cseq').split(/\s+/); return {n: +n, method: meth}; };
const branchOf = m => (/;\s*branch=([^;,\s]+)/i.exec(m.get('via')) || [])[1] || '';

function authParams(v) {
  const p = {};
  v.replace(/^\s*digest\s+/i, '').replace(/([a-z0-9_-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/gi, (_, k, q, t) => { p[k.toLowerCase()] = q !== undefined ? q : t; });
  return p;
}

// --- The user agent ---
class SipUA extends EventTarget {
  // opts: {server: 'ws://host/sip/ws', domain, user, password, displayName}
  constructor(opts) {
    super();
    this.opts = opts;
    this.host = rnd() + '.invalid';
    this.aor = 'sip:' + opts.user + '@' + opts.domain;
    // Our From: the display name (a join page's guest's name) quoted, with
    // what would end the quoted string taken out (RFC 3261 §25.1).
    this.from = (opts.displayName ? '"' + opts.displayName.replace(/["\\\r\n]/g, '') + '" ' : '') + '<' + this.aor + '>';
    this.contact = '<sip:' + opts.user + '@' + this.host + ';transport=ws>';
    this.transport = opts.server.startsWith('wss:') ? 'WSS' : 'WS';
    this.txs = new Map(); // branch -> client transaction
    this.calls = new Map(); // Call-ID -> Call
    this.regCallId = rnd(16);
    this.regSeq = 0;
    this.registered = false;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, {detail})); }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.opts.server, 'sip');
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('cannot reach ' + this.opts.server));
      ws.onclose = () => {
        this.registered = false;
        clearTimeout(this.refresh);
        for (const c of this.calls.values()) c.end('connection lost');
        for (const tx of this.txs.values()) tx.fail(new Error('connection lost'));
        this.txs.clear();
        this.emit('disconnected');
      };
      ws.onmessage = ev => { if (typeof ev.data === 'string' && ev.data.trim()) this.receive(ev.data); };
    });
  }

  send(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error('not connected');
    this.ws.send(text);
  }

  via(branch) { return 'SIP/2.0/' + this.transport + ' ' + this.host + ';branch=' + branch; }

  // request sends a request and resolves with its final response; onProv
  // gets provisional ones. A 401 or 407 is answered once with credentials.
  // spec: {method, uri, headers: [[name, value]], body, cseq (a function
  // giving the next CSeq number), onProv, ack (for INVITE's non-2xx)}
  request(spec) {
    return new Promise((resolve, reject) => {
      let authorization = null, tries = 0;
      const attempt = () => {
        const branch = 'z9hG4bK' + rnd(12);
        const n = spec.cseq();
        const headers = [['Via', this.via(branch)], ['Max-Forwards', '70']].concat(spec.headers,
          [['CSeq', n + ' ' + spec.method], ['User-Agent', 'Switchboard phone']]);
        if (authorization) headers.push(authorization);
        // No answer in 32 s (RFC 3261's timers B and F; a source the node
        // has banned gets none): 408, as a proxy would say.
        const timer = setTimeout(() => {
          if (this.txs.get(branch) !== tx) return;
          this.txs.delete(branch);
          resolve(parse('SIP/2.0 408 Request Timeout\r\nCSeq: ' + n + ' ' + spec.method + '\r\n\r\n'));
        }, 32000);
        const tx = {
          branch, method: spec.method, n, headers,
          receive: res => {
            clearTimeout(timer);
            if (res.status < 200) { spec.onProv && spec.onProv(res, tx); return; }
            this.txs.delete(branch);
            if (spec.method === 'INVITE' && res.status >= 300) this.ackFailure(spec, tx, res);
            if ((res.status === 401 || res.status === 407) && tries++ < 1) {
              const challenge = res.get(res.status === 401 ? 'www-authenticate' : 'proxy-authenticate');
              authorization = [res.status === 401 ? 'Authorization' : 'Proxy-Authorization', this.digest(challenge, spec.method, spec.uri)];
              try { attempt(); } catch (e) { reject(e); }
              return;
            }
            resolve(res);
          },
          fail: e => { clearTimeout(timer); reject(e); },
        };
        this.txs.set(branch, tx);
        spec.tx = tx;
        this.send(build(spec.method + ' ' + spec.uri + ' SIP/2.0', headers, spec.body || ''));
      };
      try { attempt(); } catch (e) { reject(e); }
    });
  }

  // ackFailure acknowledges a non-2xx final response to an INVITE: the
  // same branch and CSeq number, the response's To (RFC 3261 §17.1.1.3).
  ackFailure(spec, tx, res) {
    const keep = tx.headers.filter(([k]) => /^(via|max-forwards|from|call-id|route)$/i.test(k));
    this.send(build('ACK ' + spec.uri + ' SIP/2.0', keep.concat([['To', res.get('to')], ['CSeq', tx.n + ' ACK']])));
  }

  digest(challenge, method, uri) {
    const p = authParams(challenge);
    const ha1 = md5(this.opts.user + ':' + p.realm + ':' + this.opts.password);
    const ha2 = md5(method + ':' + uri);
    const parts = ['username="' + this.opts.user + '"', 'realm="' + p.realm + '"', 'nonce="' + p.nonce + '"', 'uri="' + uri + '"', 'algorithm=MD5'];
    let response;
    if ((p.qop || '').split(',').map(s => s.trim()).includes('auth')) {
      const cnonce = rnd(12), nc = '00000001';
      response = md5(ha1 + ':' + p.nonce + ':' + nc + ':' + cnonce + ':auth:' + ha2);
      parts.push('qop=auth', 'nc=' + nc, 'cnonce="' + cnonce + '"');
    } else {
      response = md5(ha1 + ':' + p.nonce + ':' + ha2);
    }
    parts.push('response="' + response + '"');
    if (p.opaque) parts.push('opaque="' + p.opaque + '"');
    return 'Digest ' + parts.join(', ');
  }

  // register binds this page to the user (expires 0: unbinds). It resolves
  // with the final status and refreshes the binding before it lapses.
  async register(expires = 300) {
    const uri = 'sip:' + this.opts.domain;
    const who = this.from;
    if (!this.regTag) this.regTag = rnd();
    const res = await this.request({
      method: 'REGISTER', uri, cseq: () => ++this.regSeq,
      headers: [['From', who + ';tag=' + this.regTag], ['To', who], ['Call-ID', this.regCallId],
        ['Contact', this.contact + (expires ? '' : ';expires=0')], ['Expires', String(expires)]],
    });
    clearTimeout(this.refresh);
    this.registered = res.status === 200 && expires > 0;
    if (this.registered) {
      let granted = expires;
      const m = /expires=(\d+)/i.exec(res.all('contact').join(',')) || /(\d+)/.exec(res.get('expires'));
      if (m) granted = +m[1] || expires;
      this.refresh = setTimeout(() => this.register(expires).catch(() => {}), Math.max(10, granted * 0.8) * 1000);
    }
    this.emit(this.registered ? 'registered' : 'unregistered', res.status);
    return res.status;
  }

  async close() {
    for (const c of this.calls.values()) c.hangup();
    try { if (this.registered) await this.register(0); } catch (e) { /* going anyway */ }
    clearTimeout(this.refresh);
    if (this.ws) this.ws.close();
  }

  // target turns what a person typed (a number, a user, a SIP address)
  // into a SIP URI.
  target(text) {
    let t = text.trim().replace(/^sips?:/i, '');
    if (!t.includes('@')) t = t.replace(/[\s().-]/g, '') + '@' + this.opts.domain;
    return 'sip:' + t;
  }

  // call places a call to text with the microphone stream.
  call(text, stream) {
    const c = new Call(this, {outgoing: true, remoteURI: this.target(text), stream});
    this.calls.set(c.callId, c);
    c.invite().catch(e => c.end(String(e.message || e)));
    return c;
  }

  receive(text) {
    let msg;
    try { msg = parse(text); } catch (e) { return; }
    if (msg.status) {
      const tx = this.txs.get(branchOf(msg));
      if (tx && cseqOf(msg).method === tx.method) tx.receive(msg);
      return;
    }
    const call = this.calls.get(msg.get('call-id'));
    if (call) { call.onRequest(msg); return; }
    if (msg.method === 'INVITE' && !tagOf(msg.get('to'))) {
      const c = new Call(this, {outgoing: false, invite: msg});
      this.calls.set(c.callId, c);
      c.incoming();
      return;
    }
    if (msg.method === 'ACK') return;
    if (msg.method === 'OPTIONS') { this.respond(msg, 200, 'OK', [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO']]); return; }
    this.respond(msg, msg.method === 'NOTIFY' ? 200 : 481, msg.method === 'NOTIFY' ? 'OK' : 'Call/Transaction Does Not Exist');
  }

  // respond answers a request, copying Via, From, To (adding toTag),
  // Call-ID and CSeq.
  respond(req, status, reason, extra = [], body = '', toTag = '') {
    const headers = req.all('via').map(v => ['Via', v]);
    let to = req.get('to');
    if (toTag && !tagOf(to)) to += ';tag=' + toTag;
    headers.push(['From', req.get('from')], ['To', to], ['Call-ID', req.get('call-id')], ['CSeq', req.get('cseq')]);
    try { this.send(build('SIP/2.0 ' + status + ' ' + reason, headers.concat(extra), body)); } catch (e) { /* closed */ }
  }
}

// waitICE resolves once pc has gathered its candidates (3 s at most:
// host candidates are all a LAN or loopback call needs).
function waitICE(pc) {
  return new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => { if (pc.iceGatheringState === 'complete') { pc.removeEventListener('icegatheringstatechange', done); resolve(); } };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 3000);
  });
}

// A Call is one dialog with its RTCPeerConnection. Its 'state' event
// carries 'calling', 'ringing', 'incoming', 'established', 'ended'; the
// 'ended' event a reason; 'track' the far end's stream.
class Call extends EventTarget {
  constructor(ua, o) {
    super();
    this.ua = ua;
    this.outgoing = o.outgoing;
    this.state = 'new';
    this.held = false;
    this.localSeq = Math.floor(Math.random() * 10000);
    this.pc = new RTCPeerConnection({iceServers: []});
    this.remoteStream = new MediaStream();
    this.pc.ontrack = ev => {
      this.remoteStream.addTrack(ev.track);
      this.dispatchEvent(new CustomEvent('track', {detail: this.remoteStream}));
    };
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'failed' && this.state !== 'ended') this.hangup('media failed');
    };
    if (o.outgoing) {
      this.callId = rnd(20);
      this.localTag = rnd();
      this.remoteURI = o.remoteURI;
      this.remoteTarget = o.remoteURI;
      this.local = ua.from + ';tag=' + this.localTag;
      this.remote = '<' + o.remoteURI + '>';
      this.stream = o.stream;
    } else {
      const inv = o.invite;
      this.inviteReq = inv;
      this.callId = inv.get('call-id');
      this.localTag = rnd();
      this.remote = inv.get('from');
      this.remoteURI = uriOf(inv.get('from'));
      this.remoteTarget = uriOf(inv.get('contact')) || this.remoteURI;
      this.local = inv.get('to') + ';tag=' + this.localTag;
      this.remoteSeq = cseqOf(inv).n;
      this.routes = inv.all('record-route');
    }
    this.peer = (/^"([^"]*)"/.exec(this.remote) || [])[1] || this.remoteURI.replace(/^sip:/, '').replace(/@.*/, '');
  }

  setState(s, detail) {
    if (this.state === 'ended') return;
    this.state = s;
    this.dispatchEvent(new CustomEvent('state', {detail: {state: s, info: detail}}));
  }

  dialogHeaders() {
    const h = [['From', this.local], ['To', this.remote], ['Call-ID', this.callId]];
    for (const r of this.routes || []) h.push(['Route', r]);
    return h;
  }

  async invite() {
    this.setState('calling');
    for (const t of this.stream.getTracks()) this.pc.addTrack(t, this.stream);
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await waitICE(this.pc);
    if (this.state === 'ended') return;
    const spec = {
      method: 'INVITE', uri: this.remoteURI, cseq: () => ++this.localSeq, body: this.pc.localDescription.sdp,
      headers: [['From', this.local], ['To', this.remote], ['Call-ID', this.callId], ['Contact', this.ua.contact],
        ['Content-Type', 'application/sdp'], ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO']],
      onProv: async res => {
        this.provisional = true;
        if (this.cancelling) this.sendCancel();
        if (res.status === 180 || res.status === 183) this.setState('ringing', res.status);
        if (res.body && this.pc.signalingState === 'have-local-offer') {
          await this.pc.setRemoteDescription({type: 'answer', sdp: res.body}).catch(() => {});
        }
      },
    };
    this.inviteSpec = spec;
    const res = await this.ua.request(spec);
    if (res.status >= 300 || res.status < 200) {
      this.end(res.status + ' ' + res.reason);
      return;
    }
    this.remote = res.get('to');
    this.remoteTarget = uriOf(res.get('contact')) || this.remoteURI;
    this.routes = res.all('record-route').reverse();
    this.sendAck(spec.tx.n);
    if (this.pc.signalingState === 'have-local-offer') await this.pc.setRemoteDescription({type: 'answer', sdp: res.body});
    this.setState('established');
    if (this.cancelling) this.hangup(); // a 200 that crossed our CANCEL: BYE
  }

  sendAck(n) {
    const branch = 'z9hG4bK' + rnd(12);
    this.ua.send(build('ACK ' + this.remoteTarget + ' SIP/2.0',
      [['Via', this.ua.via(branch)], ['Max-Forwards', '70']].concat(this.dialogHeaders(), [['CSeq', n + ' ACK']])));
  }

  sendCancel() {
    const tx = this.inviteSpec && this.inviteSpec.tx;
    if (!tx || this.cancelSent) return;
    this.cancelSent = true;
    const keep = tx.headers.filter(([k]) => /^(via|max-forwards|from|to|call-id|route)$/i.test(k));
    this.ua.send(build('CANCEL ' + this.remoteURI + ' SIP/2.0', keep.concat([['CSeq', tx.n + ' CANCEL']])));
  }

  // An incoming INVITE: 180 Ringing, then answer() or reject().
  incoming() {
    const inv = this.inviteReq;
    if (!inv.body || !/^application\/sdp/i.test(inv.get('content-type'))) {
      this.ua.respond(inv, 488, 'Not Acceptable Here', [], '', this.localTag);
      this.end('no offer');
      return;
    }
    this.ua.respond(inv, 180, 'Ringing', [['Contact', this.ua.contact]], '', this.localTag);
    this.state = 'incoming';
    this.ua.emit('incoming', this); // its listeners attach here
    if (this.state === 'incoming') this.setState('incoming');
  }

  async answer(stream) {
    if (this.state !== 'incoming') return;
    this.stream = stream;
    this.setState('answering');
    try {
      await this.pc.setRemoteDescription({type: 'offer', sdp: this.inviteReq.body});
      for (const t of stream.getTracks()) this.pc.addTrack(t, stream);
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await waitICE(this.pc);
    } catch (e) {
      this.ua.respond(this.inviteReq, 488, 'Not Acceptable Here', [], '', this.localTag);
      this.end('cannot answer: ' + e.message);
      return;
    }
    if (this.state === 'ended') return;
    this.ua.respond(this.inviteReq, 200, 'OK', [['Contact', this.ua.contact], ['Content-Type', 'application/sdp'],
      ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO']], this.pc.localDescription.sdp, this.localTag);
    this.setState('established');
  }

  reject(status = 486, reason = 'Busy Here') {
    if (this.state !== 'incoming') return;
    this.ua.respond(this.inviteReq, status, reason, [], '', this.localTag);
    this.end('declined');
  }

  // hangup ends the call however far it got.
  hangup(why = 'hung up') {
    switch (this.state) {
      case 'incoming': this.reject(603, 'Decline'); return;
      case 'calling': case 'ringing':
        this.cancelling = true;
        if (this.provisional) this.sendCancel();
        return; // ends with the INVITE's 487 (or a BYE after a 200 that crossed)
      case 'established': case 'answering': {
        // The media closes once the BYE is answered: a DTLS close
        // arriving first would end the call as a media failure.
        const bye = this.inDialog('BYE').catch(() => {});
        this.end(why, Promise.race([bye, new Promise(r => setTimeout(r, 2000))]));
        return;
      }
      default:
        this.end(why);
    }
  }

  inDialog(method, extra = [], body = '') {
    return this.ua.request({method, uri: this.remoteTarget, cseq: () => ++this.localSeq, body,
      headers: this.dialogHeaders().concat(extra)});
  }

  // hold puts the far end on hold (sendonly) or takes it off (sendrecv)
  // with a re-INVITE; it resolves with the re-INVITE's status.
  async hold(on) {
    if (this.state !== 'established' || this.reinviting) return 0;
    this.reinviting = true;
    try {
      const tr = this.pc.getTransceivers()[0];
      const before = tr.direction;
      tr.direction = on ? 'sendonly' : 'sendrecv';
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await waitICE(this.pc);
      const spec = {method: 'INVITE', uri: this.remoteTarget, cseq: () => ++this.localSeq, body: this.pc.localDescription.sdp,
        headers: this.dialogHeaders().concat([['Contact', this.ua.contact], ['Content-Type', 'application/sdp']])};
      const res = await this.ua.request(spec);
      if (res.status >= 200 && res.status < 300) {
        this.sendAck(spec.tx.n);
        await this.pc.setRemoteDescription({type: 'answer', sdp: res.body});
        this.held = on;
      } else {
        await this.pc.setLocalDescription({type: 'rollback'});
        tr.direction = before;
      }
      this.dispatchEvent(new CustomEvent('hold', {detail: {held: this.held, status: res.status}}));
      return res.status;
    } finally {
      this.reinviting = false;
    }
  }

  mute(on) {
    for (const s of this.pc.getSenders()) if (s.track) s.track.enabled = !on;
    this.muted = on;
  }

  // dtmf sends keys in the audio (RFC 4733) or as SIP INFO.
  dtmf(keys, info = false) {
    if (this.state !== 'established') return;
    if (info) {
      for (const k of keys) {
        this.inDialog('INFO', [['Content-Type', 'application/dtmf-relay']], 'Signal=' + k + '\r\nDuration=160\r\n').catch(() => {});
      }
      return;
    }
    const s = this.pc.getSenders().find(x => x.dtmf);
    if (s) s.dtmf.insertDTMF(s.dtmf.toneBuffer + keys, 120, 70); // after the keys still queued
  }

  // onRequest takes a request within this call.
  async onRequest(req) {
    const ua = this.ua;
    switch (req.method) {
      case 'ACK': return;
      case 'BYE':
        ua.respond(req, 200, 'OK');
        this.end('the other side hung up');
        return;
      case 'CANCEL':
        ua.respond(req, 200, 'OK');
        if (this.state === 'incoming') {
          ua.respond(this.inviteReq, 487, 'Request Terminated', [], '', this.localTag);
          this.end('missed call');
        }
        return;
      case 'INVITE': { // a re-INVITE
        if (this.state !== 'established' || !req.body) { ua.respond(req, 488, 'Not Acceptable Here'); return; }
        try {
          await this.pc.setRemoteDescription({type: 'offer', sdp: req.body});
          await this.pc.setLocalDescription(await this.pc.createAnswer());
          ua.respond(req, 200, 'OK', [['Contact', ua.contact], ['Content-Type', 'application/sdp']], this.pc.localDescription.sdp);
        } catch (e) {
          ua.respond(req, 488, 'Not Acceptable Here');
        }
        return;
      }
      default:
        ua.respond(req, 200, 'OK');
    }
  }

  // end ends the call here: at once, or the media once closeAfter settles.
  end(reason, closeAfter) {
    if (this.state === 'ended') return;
    this.setState('ended', reason);
    this.state = 'ended';
    if (closeAfter) closeAfter.then(() => this.pc.close());
    else this.pc.close();
    this.ua.calls.delete(this.callId);
    this.dispatchEvent(new CustomEvent('ended', {detail: reason}));
  }
}

global.SipUA = SipUA;
global.SipUA.md5 = md5;
})(window);
