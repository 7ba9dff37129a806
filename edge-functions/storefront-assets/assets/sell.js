// edgeshop vendor dashboard: saves the product form as JSON (with the
// version it was read at, so a change made elsewhere is shown, not lost)
// and uploads photos straight to the object store's signed URL.
// Loaded only by /sell pages.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const say = (el, text) => { if (el) el.textContent = text; };
  const json = async (method, url, body, extra = {}) => {
    const headers = { accept: "application/json", ...extra };
    if (body !== undefined) headers["content-type"] = "application/json";
    const resp = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    return { resp, data };
  };
  // A session that ended comes back to this page once renewed.
  const renew = () => location.assign("/account/refresh?next=" + encodeURIComponent(location.pathname));

  const form = document.querySelector("form[data-product-form]");
  const editor = form && product(form);
  const upload = document.querySelector("form[data-upload-form]");
  if (upload && editor) photos(upload, form.dataset.id, editor);

  function product(form) {
    const problem = $("product-problem"), status = $("product-status");
    const button = form.querySelector("button[type=submit]");
    const id = form.dataset.id;
    let etag = form.dataset.etag;
    let initial = JSON.parse(form.dataset.initial || "null");
    const labels = { title: "Title", description: "Description", price_minor: "Price",
      currency: "Currency", stock: "In stock", categories: "Categories", status: "Visibility" };
    if (new URLSearchParams(location.search).has("created")) {
      say(status, "Created. Add photos below; publish it when it is ready.");
    }

    // Categories come from the public catalog API, as shoppers see them.
    const select = $("categories");
    const chosen = new Set((select.dataset.selected || "").split(",").filter(Boolean).map(Number));
    fetch("/api/v1/categories?counts=false", { headers: { accept: "application/json" } })
      .then((r) => r.json())
      .then((list) => {
        for (const c of list.items || []) {
          const option = new Option(c.name, String(c.id), false, chosen.has(c.id));
          select.add(option);
        }
      })
      .catch(() => fail("The categories could not be loaded; reload the page."));

    const fail = (text, field) => {
      problem.textContent = text;
      problem.hidden = false;
      say(status, "");
      button.disabled = false;
      const input = field && form.elements[field === "price_minor" ? "price" : field];
      (input || problem).focus();
    };
    const values = () => {
      const f = form.elements;
      const price = f.price.value.trim();
      if (!/^\d{1,9}(\.\d{1,2})?$/.test(price)) return null;
      const [whole, frac = ""] = price.split(".");
      return {
        title: f.title.value.trim(),
        description: f.description.value,
        price_minor: Number(whole) * 100 + Number(frac.padEnd(2, "0")),
        currency: f.currency.value.trim().toUpperCase(),
        stock: Number(f.stock.value),
        categories: Array.from(select.selectedOptions, (o) => Number(o.value)),
        status: f.status.value,
      };
    };
    // Categories are a set: their order is not a change.
    const norm = (v) => (Array.isArray(v) ? [...v].sort((x, y) => x - y) : v);
    const same = (a, b) => JSON.stringify(norm(a)) === JSON.stringify(norm(b));

    // The form shows a product: after a save, or the current version.
    const fill = (p) => {
      const f = form.elements;
      f.title.value = p.title;
      f.description.value = p.description;
      f.price.value = (p.price_minor / 100).toFixed(2);
      f.currency.value = p.currency;
      f.stock.value = String(p.stock);
      f.status.value = p.status;
      for (const o of select.options) o.selected = p.categories.includes(Number(o.value));
    };
    // An edit sends only what this person changed, so changes made
    // elsewhere to other fields are kept, never overwritten unseen.
    const save = async (changes) => {
      const now = values();
      if (!now) return fail("Write the price as a number, for example 12.50.", "price");
      const body = id
        ? changes || Object.fromEntries(Object.entries(now).filter(([k, v]) => !same(initial[k], v)))
        : now;
      if (id && Object.keys(body).length === 0) return say(status, "Nothing changed.");
      button.disabled = true;
      problem.hidden = true;
      $("conflict").hidden = true;
      say(status, "Saving…");
      let answer;
      try {
        answer = id
          ? await json("PATCH", `/sell/products/${id}`, body, { "if-match": etag })
          : await json("POST", "/sell/products", body);
      } catch {
        return fail("The shop could not be reached; nothing was saved. Try again.");
      }
      const { resp, data } = answer;
      if (resp.status === 401) return renew();
      if (resp.status === 201) {
        location.assign(`/sell/products/${data.id}?created`);
        return;
      }
      if (resp.status === 200) {
        etag = resp.headers.get("etag") || etag;
        initial = data;
        fill(data);
        button.disabled = false;
        say(status, data.status === "published"
          ? "Saved. Shoppers see the change within seconds."
          : "Saved as a draft; shoppers do not see drafts.");
        return;
      }
      if (resp.status === 412) return conflict(body);
      fail(`${data.title || "Not saved"}: ${data.detail || "try again"}.`, data.field);
    };

    // Someone changed the product since this page read it: say what they
    // changed, keep what this person typed, and let them choose.
    const conflict = async (mine) => {
      let current;
      try {
        const { resp, data } = await json("GET", `/sell/products/${id}`);
        if (!resp.ok) throw new Error();
        current = { data, etag: resp.headers.get("etag") };
      } catch {
        return fail("This product was changed elsewhere, and the current version could not be read. Reload the page.");
      }
      const names = (keys) => keys.map((k) => labels[k]).join(", ");
      const theirs = Object.keys(labels).filter((k) => !same(initial[k], current.data[k]));
      const both = theirs.filter((k) => k in mine);
      say($("conflict-text"), "This product was changed elsewhere since you opened it" +
        (theirs.length ? ` (${names(theirs)})` : "") + ". Nothing was saved; your changes are still in the form. " +
        (both.length
          ? `Saving yours replaces their ${names(both)}.`
          : `Saving yours changes only ${names(Object.keys(mine))} and keeps theirs.`));
      const box = $("conflict");
      box.hidden = false;
      box.querySelector("[data-conflict-discard]").href = location.pathname;
      box.querySelector("[data-conflict-keep]").onclick = () => {
        etag = current.etag;
        initial = current.data;
        save(mine);
      };
      say(status, "");
      button.disabled = false;
      box.querySelector("[data-conflict-keep]").focus();
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); save(null); });
    // A photo made ready is a new version of the product: the form goes on
    // from it, so the next save is not taken for a conflict.
    return {
      async reread() {
        const { resp, data } = await json("GET", `/sell/products/${id}`);
        if (resp.ok) { etag = resp.headers.get("etag") || etag; initial = data; }
      },
    };
  }

  function photos(form, productId, editor) {
    const status = $("upload-status"), bar = $("upload-progress");
    const input = $("photo"), button = form.querySelector("button[type=submit]");
    const done = (text) => { say(status, text); button.disabled = false; };
    // Straight to storage: a signed PUT, with the progress the browser sees.
    const put = (signed, file) => new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(signed.method || "PUT", signed.url);
      for (const [k, v] of Object.entries(signed.headers || {})) {
        if (!["content-length", "host"].includes(k.toLowerCase())) xhr.setRequestHeader(k, v);
      }
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(String(xhr.status))));
      xhr.onerror = () => reject(new Error("network"));
      xhr.send(file);
    });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = input.files[0];
      if (!file) return done("Choose a photo first.");
      button.disabled = true;
      bar.value = 0;
      say(status, "Asking for an upload address…");
      try {
        let { resp, data } = await json("POST", "/sell/uploads",
          { file_name: file.name, content_type: file.type, size: file.size });
        if (resp.status === 401) return renew();
        if (resp.status !== 201) return done(`${data.title || "Not uploaded"}: ${data.detail || "try again"}.`);
        const uploadId = data.id;
        say(status, "Uploading…");
        await put(data.put, file);
        bar.value = 100;
        ({ resp, data } = await json("POST", `/sell/products/${productId}/media`, { upload: uploadId }));
        if (resp.status !== 202) return done(`${data.title || "Not attached"}: ${data.detail || "try again"}.`);
        // Processing runs at the origin after the answer: follow it.
        // Asking less often as it goes on: every poll spends upload budget.
        for (let i = 0; i < 30; i++) {
          say(status, "Processing: checking the image and making its sizes…");
          await sleep(Math.min(1000 * (1 + Math.floor(i / 3)), 5000));
          ({ resp, data } = await json("GET", `/sell/uploads/${uploadId}`));
          if (data.status === "ready") {
            const variants = (data.media && data.media.variants) || [];
            const small = variants[0];
            if (small) {
              const img = new Image(small.width, small.height);
              img.src = small.url;
              img.alt = `Photo ${$("photos").children.length + 1}`;
              const li = document.createElement("li");
              li.append(img);
              $("photos").append(li);
            }
            input.value = "";
            await editor.reread().catch(() => {});
            return done("Ready: the photo is on the product.");
          }
          if (data.status === "failed" || data.status === "expired") {
            return done(`The photo could not be used: ${data.error || data.status}. Nothing was published.`);
          }
        }
        done("Still processing; reload the page in a minute to see the photo.");
      } catch {
        done("The upload did not go through; nothing was published. Try again.");
      }
    });
  }
})();
