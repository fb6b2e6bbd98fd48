// The nurse app's service worker: keeps the app shell (the page, its
// scripts, styles, icon and manifest) so the app opens without a network.
// It never caches API answers or the socket: only the files listed here,
// fetched network-first so a new release is picked up at once.

const CACHE = 'yixin-nurse-shell-v3';
const SHELL = [
  './',
  './app.js',
  './api.js',
  './socket.js',
  './fixes.js',
  './state.js',
  './maps.js',
  './alert.js',
  './sos.js',
  './suggestion.js',
  './i18n.js',
  './style.css',
  './icon.svg',
  './manifest.webmanifest',
];

const scope = new URL(self.registration.scope);
const shellUrls = new Set(SHELL.map((p) => new URL(p, scope).href));

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  url.search = '';
  if (!shellUrls.has(url.href)) return; // everything else: straight to the network
  event.respondWith(
    fetch(req)
      .then((res) => {
        if (res.ok) {
          const copy = res.clone();
          caches.open(CACHE).then((cache) => cache.put(url.href, copy));
        }
        return res;
      })
      .catch(() => caches.match(url.href).then((hit) => hit || Response.error())),
  );
});
