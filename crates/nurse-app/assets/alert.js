// Getting a nurse's attention for an offer (a sound made with WebAudio, no
// audio files; a vibration), and keeping the screen on during a shift.

let audio = null;

/** Must run in a user gesture once (e.g. going on shift): browsers start audio only then. */
export function unlockAudio() {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.state === 'suspended') audio.resume();
  } catch (_) {
    audio = null;
  }
}

/** Three short rising beeps and a vibration. */
export function ring() {
  try {
    if (navigator.vibrate) navigator.vibrate([250, 120, 250, 120, 400]);
  } catch (_) {
    // not on this device
  }
  if (!audio) return;
  try {
    const t0 = audio.currentTime + 0.02;
    [880, 988, 1175].forEach((freq, i) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      const t = t0 + i * 0.22;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.4, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.2);
    });
  } catch (_) {
    // no sound: the card and the vibration remain
  }
}

let lock = null;
let wanted = false;

async function acquire() {
  if (!wanted || lock || !('wakeLock' in navigator) || document.visibilityState !== 'visible') return;
  try {
    lock = await navigator.wakeLock.request('screen');
    lock.addEventListener('release', () => {
      lock = null;
    });
  } catch (_) {
    lock = null; // refused (battery saver, not allowed): the screen may sleep
  }
}

document.addEventListener('visibilitychange', () => {
  // A lock is released when the page is hidden; take it again on return.
  acquire();
});

/** Keeps the screen on (where the browser allows it) while `on`. */
export function keepAwake(on) {
  wanted = on;
  if (on) {
    acquire();
  } else if (lock) {
    lock.release().catch(() => {});
    lock = null;
  }
}

/** Whether a wake lock is held now. */
export function awake() {
  return !!lock;
}
