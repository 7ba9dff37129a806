// edgeshop storefront: the cart, kept in this browser (localStorage).
// Pages work without this script; it adds the cart and nothing else yet.
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
    say(cart.querySelector("[data-cart-total]"), lines.length ? money(total, currency) : "");
  };
  if (cart) { cart.querySelector("[data-cart-needs-script]").hidden = true; render(); }
  count();
})();
