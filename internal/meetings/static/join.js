// join.js: the join page's "Join from this browser". It gets a guest pass
// for the meeting (POST {link}/guest), calls the meeting's SIP URI with it
// through SipUA (/phone/sip.js: SIP over WebSocket, WebRTC audio), and
// follows the guest's place in the meeting — joining, the lobby, in —
// and who else is there and speaking from the roster stream
// ({link}/roster, server-sent events read with fetch, which can send the
// pass in a header).
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  const link = location.pathname.replace(/\/+$/, '');
  const form = $('join-form'), nameInput = $('name'), joinButton = $('join');
  const muteButton = $('mute'), leaveButton = $('leave');
  let ua = null, call = null, stream = null, rosterAbort = null, muted = false, leaving = false;
  let names = null; // the roster's names last shown, to announce who joined or left

  // setState shows where the guest is: idle, joining, lobby, in or ended.
  function setState(state, text) {
    if ($('status').textContent !== text) $('status').textContent = text;
    const was = document.body.dataset.state;
    document.body.dataset.state = state;
    const inCall = state === 'lobby' || state === 'in' || state === 'joining';
    $('in-call').hidden = !(state === 'lobby' || state === 'in');
    $('roster-title').hidden = state !== 'in';
    $('roster').hidden = state !== 'in';
    nameInput.disabled = joinButton.disabled = inCall;
    form.hidden = state === 'lobby' || state === 'in';
    if (state === 'in' && was !== 'in') muteButton.focus();
    if (state === 'lobby' && was !== 'lobby') leaveButton.focus();
    if (state === 'ended' || state === 'idle') joinButton.textContent = state === 'ended' ? 'Join again' : 'Join with microphone';
  }

  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      setState('idle', 'Type your name first: the meeting shows it.');
      nameInput.focus();
      return;
    }
    join(name).catch(e => finish('Could not join: ' + (e.message || e)));
  });

  async function join(name) {
    leaving = false;
    names = null;
    setState('joining', 'Getting a guest pass…');
    const r = await fetch(link + '/guest', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name})});
    if (!r.ok) throw new Error((await r.text()).trim() || r.status + ' ' + r.statusText);
    const pass = await r.json();
    setState('joining', 'Asking for your microphone…');
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      throw new Error('this browser gives no microphone to this page: open the link over HTTPS (or on localhost)');
    }
    stream = await navigator.mediaDevices.getUserMedia({audio: true});
    const server = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + pass.ws;
    ua = new SipUA({server, domain: pass.domain, user: pass.user, password: pass.password, displayName: pass.name});
    await ua.connect();
    ua.addEventListener('disconnected', () => { if (call && !leaving) finish('The connection to the meeting was lost.'); });
    setState('joining', 'Joining the meeting…');
    watchRoster(pass);
    call = ua.call(pass.uri, stream);
    call.addEventListener('track', ev => { $('remote-audio').srcObject = ev.detail; });
    call.addEventListener('ended', ev => finish(leaving ? 'You left the meeting.' : 'The call ended: ' + ev.detail + '.'));
  }

  // finish tidies up after the call, whoever ended it.
  function finish(text) {
    if (rosterAbort) rosterAbort.abort();
    rosterAbort = null;
    const u = ua;
    call = ua = null;
    if (u) u.close().catch(() => {});
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    muted = false;
    muteButton.setAttribute('aria-pressed', 'false');
    setState('ended', text);
  }

  leaveButton.addEventListener('click', () => {
    leaving = true;
    if (call) call.hangup();
    else finish('You left the meeting.');
  });

  muteButton.addEventListener('click', () => {
    if (!call) return;
    muted = !muted;
    call.mute(muted);
    muteButton.setAttribute('aria-pressed', String(muted));
    renderSelfMute();
  });

  // watchRoster reads the roster stream until the call ends.
  async function watchRoster(pass) {
    const ctl = new AbortController();
    rosterAbort = ctl;
    try {
      const r = await fetch(link + '/roster', {headers: {Authorization: 'Bearer ' + pass.user + ':' + pass.password}, signal: ctl.signal});
      if (!r.ok) {
        finishOrSay('Could not follow the meeting: ' + (await r.text()).trim());
        return;
      }
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const type = (/^event: *(.*)$/m.exec(block) || [])[1];
          const data = block.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5)).join('\n');
          if (type === 'roster' && data && rosterAbort === ctl) show(JSON.parse(data));
        }
      }
    } catch (e) {
      // Aborted as the call ended, or the page is going.
    }
  }

  function finishOrSay(text) {
    if (call) $('status').textContent = text;
  }

  // show applies a roster view: {state: joining|lobby|in, people: [...]}.
  function show(view) {
    if (!call) return;
    if (view.state === 'lobby') {
      setState('lobby', 'You are in the lobby: waiting for someone in the meeting to let you in.');
    } else if (view.state === 'in') {
      setState('in', 'You are in the meeting.');
    } else if (document.body.dataset.state !== 'joining') {
      setState('joining', 'Joining the meeting…');
    }
    const list = $('roster');
    list.replaceChildren();
    for (const p of view.people || []) {
      const li = document.createElement('li');
      li.className = p.speaking ? 'speaking' : '';
      if (p.you) li.dataset.you = 'true';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = p.name + (p.you ? ' (you)' : '') + (p.kind === 'bot' ? ' (bot)' : '') + (p.kind === 'phone' ? ' (phone)' : '');
      li.append(who);
      if (p.speaking) li.append(tag('speaking', 'speaking-tag'));
      if (p.muted) li.append(tag('muted by the meeting', 'muted-tag'));
      list.append(li);
    }
    renderSelfMute();
    announce(view);
  }

  function tag(text, cls) {
    const s = document.createElement('span');
    s.className = 'tag ' + cls;
    s.textContent = text;
    return s;
  }

  // renderSelfMute marks the guest's own entry muted while they are.
  function renderSelfMute() {
    const me = document.querySelector('#roster li[data-you]');
    if (!me) return;
    const t = me.querySelector('.self-muted-tag');
    if (muted && !t) me.append(tag('muted', 'self-muted-tag'));
    if (!muted && t) t.remove();
  }

  // announce tells screen readers who joined and who left (not who is
  // speaking: that changes every second).
  function announce(view) {
    if (view.state !== 'in') return;
    const now = (view.people || []).filter(p => !p.you).map(p => p.name);
    if (names) {
      const joined = now.filter(n => !names.includes(n)), left = names.filter(n => !now.includes(n));
      const news = joined.map(n => n + ' joined.').concat(left.map(n => n + ' left.')).join(' ');
      if (news) $('roster-news').textContent = news;
    } else {
      $('roster-news').textContent = now.length ? 'In the meeting: ' + now.join(', ') + '.' : 'Nobody else is in the meeting yet.';
    }
    names = now;
  }

  window.addEventListener('pagehide', () => { if (call) { leaving = true; call.hangup(); } });
  setState('idle', $('status').textContent);
})();
