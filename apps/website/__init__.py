"""The public Sereus Fabric website (what it is, how threads work, the example uses, running a
node, the API) and the PWA plumbing (web manifest, service worker, offline page)."""
