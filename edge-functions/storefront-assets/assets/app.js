// edgeshop storefront: the cart, kept in this browser (localStorage), and
// checkout, which sends it. Pages work without this script for reading and
// navigating; the cart and checkout need it.
"use strict";
(() => {
  const KEY = "edgeshop.cart";
  const MAX_LINES = 50, MAX_QTY = 99;
  const load = () => {
    try {
      const lines = JSON.parse(localStorage.getItem(KEY) || "[]");
      return Array.isArray(lines) ? lines.filter((l) => l && Number.isInteger(l.id)) : [];
    } catch { return []; }
  };
  const save = (lines) => {
    localStorage.setItem(KEY, JSON.stringify(lines.slice(0, MAX_LINES)));
    count();
  };
  const money = (minor, currency) => {
    try {
      return new Intl.NumberFormat(document.documentElement.lang || "en",
        { style: "currency", currency }).format(minor / 100);
    } catch { return (minor / 100).toFixed(2) + " " + currency; }
  };
  const count = () => {
    const n = load().reduce((s, l) => s + l.qty, 0);
    for (const el of document.querySelectorAll("[data-cart-count]")) {
      el.textContent = ` (${n})`;
      el.hidden = false;
    }
  };
  const say = (el, text) => { if (el) el.textContent = text; };

  for (const button of document.querySelectorAll("button[data-add-to-cart]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      const d = button.dataset;
      const lines = load();
      const id = Number(d.id);
      const line = lines.find((l) => l.id === id);
      const stock = Number(d.stock);
      if (line) line.qty = Math.min(line.qty + 1, MAX_QTY, stock);
      else lines.push({ id, title: d.title, price: Number(d.price), currency: d.currency, qty: 1 });
      save(lines);
      say(document.getElementById("cart-status"), `Added “${d.title}” to your cart.`);
    });
  }

  const cart = document.querySelector("[data-cart]");
  const render = () => {
    const lines = load();
    const body = cart.querySelector("tbody");
    body.replaceChildren();
    let total = 0, currency = null;
    for (const l of lines) {
      total += l.price * l.qty;
      currency = currency || l.currency;
      const row = document.createElement("tr");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = `/p/${l.id}`;
      link.textContent = l.title;
      name.append(link);
      const qty = document.createElement("td");
      const input = document.createElement("input");
      Object.assign(input, { type: "number", min: "0", max: String(MAX_QTY), value: String(l.qty) });
      input.setAttribute("aria-label", `Quantity of ${l.title}`);
      input.addEventListener("change", () => {
        // An emptied field is a change of mind in progress, not a removal.
        if (input.value.trim() === "") { input.value = String(l.qty); return; }
        const q = Math.max(0, Math.min(MAX_QTY, Math.trunc(Number(input.value) || 0)));
        save(load().map((x) => (x.id === l.id ? { ...x, qty: q } : x)).filter((x) => x.qty > 0));
        render();
      });
      qty.append(input);
      const price = document.createElement("td");
      price.textContent = money(l.price * l.qty, l.currency);
      const remove = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Remove";
      button.setAttribute("aria-label", `Remove ${l.title}`);
      button.addEventListener("click", () => { save(load().filter((x) => x.id !== l.id)); render(); });
      remove.append(button);
      row.append(name, qty, price, remove);
      body.append(row);
    }
    cart.querySelector("[data-cart-empty]").hidden = lines.length > 0;
    cart.querySelector("table").hidden = lines.length === 0;
    cart.querySelector("[data-cart-checkout]").hidden = lines.length === 0;
    say(cart.querySelector("[data-cart-total]"), lines.length ? money(total, currency) : "");
  };
  if (cart) { cart.querySelector("[data-cart-needs-script]").hidden = true; render(); }

  const form = document.querySelector("form[data-checkout]");
  if (form) checkout(form);
  count();

  function checkout(form) {
    const DRAFT = "edgeshop.checkout", RENEWED = "edgeshop.checkout.renewed";
    const problem = document.getElementById("checkout-problem");
    const status = document.getElementById("checkout-status");
    const button = form.querySelector("button[type=submit]");
    const summary = () => {
      const lines = load();
      const body = form.querySelector("tbody");
      body.replaceChildren();
      let total = 0;
      for (const l of lines) {
        total += l.price * l.qty;
        const row = document.createElement("tr");
        row.dataset.id = l.id;
        for (const text of [l.title, String(l.qty), money(l.price * l.qty, l.currency)]) {
          const cell = document.createElement("td");
          cell.textContent = text;
          row.append(cell);
        }
        body.append(row);
      }
      say(form.querySelector("[data-checkout-total]"), lines.length ? money(total, lines[0].currency) : "");
      return lines;
    };
    if (!summary().length) { document.querySelector("[data-checkout-empty]").hidden = false; return; }
    form.hidden = false;
    // What the shopper typed is kept in this tab (not the payment choice),
    // so changing the cart or renewing the session loses none of it.
    const fields = ["name", "line1", "line2", "city", "postal_code", "country"];
    try {
      const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "{}");
      for (const k of fields) if (typeof draft[k] === "string") form.elements[k].value = draft[k];
    } catch { /* a broken draft is no draft */ }
    form.addEventListener("input", () => sessionStorage.setItem(DRAFT,
      JSON.stringify(Object.fromEntries(fields.map((k) => [k, form.elements[k].value])))));
    if (sessionStorage.getItem(RENEWED)) {
      sessionStorage.removeItem(RENEWED);
      say(status, "You are signed in again. Check your details and place the order.");
    }
    const fail = (text) => {
      problem.textContent = text;
      problem.hidden = false;
      problem.focus();
      say(status, "");
      button.disabled = false;
    };
    // One Idempotency-Key per attempt: kept while the outcome is unknown (a
    // retry then cannot order twice), new once the shop gave an answer.
    let key = null;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(form));
      const lines = load();
      const order = {
        items: lines.map((l) => ({ product_id: l.id, quantity: l.qty, unit_price_minor: l.price })),
        shipping_address: { name: f.name, line1: f.line1, line2: f.line2, city: f.city,
          postal_code: f.postal_code, country: f.country.trim().toUpperCase() },
        payment_method: f.payment_method,
      };
      key = key || Array.from(crypto.getRandomValues(new Uint8Array(16)),
        (b) => b.toString(16).padStart(2, "0")).join("");
      button.disabled = true;
      problem.hidden = true;
      say(status, "Placing your order…");
      let resp, body;
      try {
        resp = await fetch("/checkout", {
          method: "POST", credentials: "same-origin", body: JSON.stringify(order),
          headers: { "content-type": "application/json", accept: "application/json", "idempotency-key": key },
        });
        body = await resp.json().catch(() => ({}));
      } catch {
        return fail("The shop could not be reached. Nothing was ordered twice: press “Place order” to try again.");
      }
      if (resp.status === 201 || resp.status === 202) {
        localStorage.removeItem(KEY);
        sessionStorage.removeItem(DRAFT);
        location.assign(`/orders/${encodeURIComponent(body.id)}`);
        return;
      }
      if (resp.status === 401) {
        // The session ended (its access token expired): renew it and come
        // back; the cart and the draft wait here.
        sessionStorage.setItem(RENEWED, "1");
        location.assign("/account/refresh?next=%2Fcheckout");
        return;
      }
      if (resp.status < 500 && resp.status !== 429) key = null;
      const type = String(body.type || "").split("/").pop();
      if (type === "price-changed" && Array.isArray(body.lines)) {
        const now = new Map(body.lines.map((l) => [l.product_id, l.unit_price_minor]));
        save(load().map((l) => (now.has(l.id) ? { ...l, price: now.get(l.id) } : l)));
        summary();
        return fail("Some prices changed since you filled your cart; the order above shows the new prices. Nothing was charged: place the order again to accept them.");
      }
      if (type === "payment-failed") {
        return fail("Your payment was declined and nothing was charged. Choose another payment method and place the order again.");
      }
      if (type === "out-of-stock") {
        const m = /product (\d+) has only (\d+) left/.exec(body.detail || "");
        const line = m && lines.find((l) => l.id === Number(m[1]));
        return fail(line
          ? `“${line.title}” has only ${m[2]} left, so nothing was ordered or charged. Change the quantity in your cart and try again.`
          : "Something in your cart sold out, so nothing was ordered or charged. Change your cart and try again.");
      }
      fail(`${body.title || "Checkout failed"}: ${body.detail || "try again in a moment"}.`);
    });
  }
})();
