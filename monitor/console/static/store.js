// The store banner of the staff console. When the server cannot write its audit records (disk full
// or failing), the calls with records waiting are paused until it can: staff must know, in the
// server's words. Loaded before console.js, which calls showStore with the board's "store" field
// and the feed's "store" messages.
"use strict";

function showStore(store) {
  const banner = document.getElementById("store-error");
  banner.hidden = store.ok;
  document.body.dataset.store = store.ok ? "ok" : "error";
  if (store.ok) {
    banner.textContent = "";
    return store;
  }
  const calls = store.calls.length ? ` Calls paused until they are: ${store.calls.join(", ")}.` : "";
  banner.textContent = `Store error: records cannot be written (${store.detail}). ${store.waiting} records `
    + `are waiting and will be written when the store recovers.${calls} Tell the system administrator.`;
  return store;
}
