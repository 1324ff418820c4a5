// phone.js: the /phone page, on sip.js. Sign in (REGISTER with digest over
// /sip/ws on this origin), call, answer with a ring, keys, mute, hold, hang
// up, and level meters of both directions.
'use strict';
(() => {
const $ = id => document.getElementById(id);
const domain = document.querySelector('meta[name="sip-domain"]').content;
const server = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/sip/ws';
let ua = null, call = null, audio = null, mic = null, started = 0, clockTimer = 0;

const say = text => { $('status').textContent = text; };

// --- Audio: one context for the ring and the meters ---
function ctx() {
  if (!audio) audio = new AudioContext();
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

// ring plays a generated ring (incoming: 440+480 Hz, 2 s on, 4 s off) or
// ringback (quieter) until stopRing.
let ringer = null;
function ring(loud) {
  stopRing();
  const ac = ctx(), gain = ac.createGain(), oscs = [440, 480].map(f => {
    const o = ac.createOscillator();
    o.frequency.value = f;
    o.connect(gain);
    o.start();
    return o;
  });
  gain.connect(ac.destination);
  const level = loud ? 0.2 : 0.05;
  let on = true;
  gain.gain.value = level;
  const timer = setInterval(() => { on = !on; gain.gain.value = on ? level : 0; }, loud ? 2000 : 3000);
  ringer = {stop() { clearInterval(timer); oscs.forEach(o => o.stop()); gain.disconnect(); }};
}
function stopRing() { if (ringer) { ringer.stop(); ringer = null; } }

// meter shows a stream's level (RMS of its waveform, 0..1) on a <meter>.
const meters = {};
function meter(id, stream) {
  if (meters[id]) meters[id].stop();
  const ac = ctx(), src = ac.createMediaStreamSource(stream), an = ac.createAnalyser();
  an.fftSize = 1024;
  src.connect(an);
  const buf = new Float32Array(an.fftSize), el = $(id);
  const timer = setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    el.value = Math.min(1, Math.sqrt(sum / buf.length) * 3);
  }, 100);
  meters[id] = {stop() { clearInterval(timer); src.disconnect(); el.value = 0; delete meters[id]; }};
}

async function microphone() {
  if (!mic || mic.getTracks().every(t => t.readyState === 'ended')) {
    mic = await navigator.mediaDevices.getUserMedia({audio: true, video: false});
    meter('mic-level', mic);
  }
  mic.getTracks().forEach(t => { t.enabled = true; });
  return mic;
}

// --- Controls ---
function controls() {
  const live = call && call.state === 'established';
  const active = call && call.state !== 'ended';
  $('mute').disabled = !live;
  $('hold').disabled = !live;
  $('hangup').disabled = !active;
  $('call').disabled = !!active;
  $('mute').setAttribute('aria-pressed', String(!!(call && call.muted)));
  $('hold').setAttribute('aria-pressed', String(!!(call && call.held)));
  $('hold').textContent = call && call.held ? 'Resume' : 'Hold';
  $('mute').textContent = call && call.muted ? 'Unmute' : 'Mute';
}

function elapsed() {
  const s = Math.floor((Date.now() - started) / 1000);
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
}

function track(c) {
  call = c;
  $('sent-keys').textContent = '';
  c.addEventListener('track', ev => {
    const el = $('remote-audio');
    el.srcObject = ev.detail;
    el.play().catch(() => {});
    meter('far-level', ev.detail);
  });
  c.addEventListener('state', ev => {
    const {state, info} = ev.detail;
    switch (state) {
      case 'calling': say('Calling ' + c.peer + '…'); break;
      case 'ringing': say('Ringing ' + c.peer + '…'); if (info === 180) ring(false); else stopRing(); break;
      case 'incoming':
        $('incoming-text').textContent = 'Incoming call from ' + c.peer;
        $('incoming').hidden = false;
        say('Incoming call from ' + c.peer);
        ring(true);
        $('answer').focus();
        break;
      case 'established':
        stopRing();
        $('incoming').hidden = true;
        started = Date.now();
        say('In a call with ' + c.peer + '.');
        clearInterval(clockTimer);
        $('elapsed').textContent = '0:00';
        clockTimer = setInterval(() => { $('elapsed').textContent = elapsed(); }, 1000);
        $('hangup').focus();
        break;
      case 'ended':
        stopRing();
        clearInterval(clockTimer);
        $('incoming').hidden = true;
        if (meters['far-level']) meters['far-level'].stop();
        say('Call ended' + (info ? ': ' + info : '') + (started ? ' (' + elapsed() + ')' : '') + '.');
        started = 0;
        $('elapsed').textContent = '';
        $('remote-audio').srcObject = null;
        call = null;
        controls();
        $('target').focus();
        return;
    }
    controls();
  });
  c.addEventListener('hold', ev => {
    const {held, status} = ev.detail;
    if (status >= 300) say('Hold failed: ' + status + '.');
    else say(held ? 'On hold: ' + c.peer + ' hears nothing.' : 'In a call with ' + c.peer + '.');
    controls();
  });
  controls();
}

$('signin').addEventListener('submit', async ev => {
  ev.preventDefault();
  ctx();
  const user = $('user').value.trim(), password = $('password').value;
  $('signin-button').disabled = true;
  say('Signing in as ' + user + '…');
  const next = new SipUA({server, domain, user, password});
  try {
    await next.connect();
    const code = await next.register();
    if (code !== 200) {
      next.close();
      say(code === 403 || code === 401 ? 'Sign-in refused: wrong username or password.'
        : code === 408 ? 'Sign-in failed: the server did not answer.' : 'Sign-in failed: ' + code + '.');
      $('password').focus();
      return;
    }
  } catch (e) {
    say('Sign-in failed: ' + (e.message || e));
    return;
  } finally {
    $('signin-button').disabled = false;
  }
  ua = next;
  sessionStorage.setItem('switchboard-phone-user', user);
  ua.addEventListener('incoming', ev => {
    if (call) { ev.detail.reject(486, 'Busy Here'); return; }
    track(ev.detail);
  });
  ua.addEventListener('disconnected', () => {
    if (ua !== next) return;
    say('Disconnected from the server. Sign in again.');
    signedOut();
  });
  $('password').value = '';
  $('signin').hidden = true;
  $('phone').hidden = false;
  $('me').textContent = '(' + ua.aor.replace(/^sip:/, '') + ')';
  say('Signed in as ' + ua.aor.replace(/^sip:/, '') + '. Ready.');
  controls();
  $('target').focus();
});

function signedOut() {
  ua = null;
  call = null;
  stopRing();
  for (const m of Object.values(meters)) m.stop();
  if (mic) { mic.getTracks().forEach(t => t.stop()); mic = null; }
  $('phone').hidden = true;
  $('signin').hidden = false;
  $('user').focus();
}

$('signout').addEventListener('click', async () => {
  const u = ua;
  signedOut();
  say('Signed out.');
  if (u) await u.close();
});

$('dial').addEventListener('submit', async ev => {
  ev.preventDefault();
  if (!ua || call) return;
  const target = $('target').value.trim();
  if (!target) return;
  try {
    track(ua.call(target, await microphone()));
  } catch (e) {
    say('Cannot call: ' + (e.message || e) + ' (is the microphone allowed?)');
  }
});

$('answer').addEventListener('click', async () => {
  if (!call || call.state !== 'incoming') return;
  stopRing();
  try {
    await call.answer(await microphone());
  } catch (e) {
    call.reject(480, 'Temporarily Unavailable');
    say('Cannot answer: ' + (e.message || e) + ' (is the microphone allowed?)');
  }
});
$('decline').addEventListener('click', () => { if (call) call.reject(603, 'Decline'); });
$('hangup').addEventListener('click', () => { if (call) call.hangup(); });
$('mute').addEventListener('click', () => {
  if (!call) return;
  call.mute(!call.muted);
  say(call.muted ? 'Muted: ' + call.peer + ' hears nothing from you.' : 'Unmuted.');
  controls();
});
$('hold').addEventListener('click', async () => {
  if (!call) return;
  $('hold').disabled = true;
  say(call.held ? 'Resuming…' : 'Putting on hold…');
  await call.hold(!call.held).catch(e => say('Hold failed: ' + (e.message || e)));
  controls();
  if (!$('hold').disabled) $('hold').focus(); // it lost the focus while disabled
});

function key(k) {
  if (call && call.state === 'established') {
    call.dtmf(k, $('dtmf-mode').value === 'info');
    $('sent-keys').textContent = ($('sent-keys').textContent + k).slice(-32);
  } else if (!call) {
    $('target').value += k;
  }
}
$('keypad').addEventListener('click', ev => {
  const k = ev.target.closest('button') && ev.target.closest('button').dataset.key;
  if (k) key(k);
});
// Typing 0-9, * or # in a call sends the key, wherever the focus is but a
// text field.
document.addEventListener('keydown', ev => {
  if (!call || call.state !== 'established' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.matches && ev.target.matches('input, select, textarea')) return;
  if (/^[0-9*#]$/.test(ev.key)) { key(ev.key); ev.preventDefault(); }
});

window.addEventListener('pagehide', () => { if (ua) ua.close(); });
const last = sessionStorage.getItem('switchboard-phone-user');
if (last) $('user').value = last;
$(last ? 'password' : 'user').focus();
})();
