// Resumable uploads for the dashboard's upload page (control_plane/dashboard/media_pages.py).
//
// POST {uploads}            {filename, size, options}  -> {upload_id, offset, ...}   (options checked first)
// GET  {uploads}/{id}                                  -> {offset, complete, job_id, job_url}
// PUT  {uploads}/{id}       Content-Range: bytes START-END/SIZE, the bytes -> the same state
//                           Content-Range: bytes */SIZE, no body (every byte is in: make the job)
//
// The upload's id is kept in localStorage under the file's name, size and modification time,
// so a reloaded page (the same file chosen again) goes on from the server's offset. Each
// chunk is retried with backoff, honouring Retry-After on 429/503; after repeated failures a
// Retry button resumes. Without JavaScript the form posts the file in one request instead.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.fetch || !window.XMLHttpRequest || !window.Blob || !Blob.prototype.slice) return;

  var fileInput = document.getElementById("video");
  var button = document.getElementById("upload-button");
  var box = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var statusLine = document.getElementById("upload-status");
  var retryButton = document.getElementById("upload-retry");
  var uploadsUrl = form.dataset.uploadsUrl;
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var MAX_ATTEMPTS = 5;
  var current = null; // {file, key, state}
  var busy = false;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
    statusLine.setAttribute("role", isError ? "alert" : "status");
  }

  function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }

  function show(sent, size) {
    var percent = size ? Math.floor((sent / size) * 100) : 0;
    if (sent >= size) percent = 100;
    bar.value = percent;
    bar.textContent = percent + "%";
    document.dispatchEvent(new CustomEvent("reelfarm:upload-progress", {detail: {percent: percent, sent: sent, size: size}}));
    return percent;
  }

  function options() {
    var out = {};
    form.querySelectorAll("[data-option]").forEach(function (el) {
      var name = el.dataset.option;
      if (el.type === "checkbox") { out[name] = el.checked; return; }
      var value = el.value;
      if (name !== "prompt") value = value.trim();
      if (value === "") return;
      if (el.type === "number") {
        var n = Number(value);
        out[name] = isNaN(n) ? value : n; // not a number: the server names the field
      } else {
        out[name] = value;
      }
    });
    return out;
  }

  function storageKey(file) { return "reelfarm-upload:" + file.name + ":" + file.size + ":" + file.lastModified; }
  function remember(key, id) { try { localStorage.setItem(key, id); } catch (e) { /* private mode */ } }
  function forget(key) { try { localStorage.removeItem(key); } catch (e) { /* private mode */ } }
  function recall(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // An error the protocol answered: {status, message, offset, retryAfter}.
  function failure(status, body, retryAfter) {
    var message = (body && body.error) || (status ? "the server answered " + status : "the connection failed");
    return {status: status, message: message, offset: body && typeof body.offset === "number" ? body.offset : null,
            retryAfter: retryAfter};
  }

  function parse(text) { try { return JSON.parse(text); } catch (e) { return null; } }

  function retryable(err) { return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500; }

  function backoff(attempt, err) {
    var seconds = parseFloat(err.retryAfter);
    if (!isNaN(seconds) && seconds >= 0) return Math.min(seconds, 60) * 1000;
    return Math.min(1000 * Math.pow(2, attempt - 1), 16000) + Math.random() * 250;
  }

  function send(method, url, body, headers, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      Object.keys(headers || {}).forEach(function (h) { xhr.setRequestHeader(h, headers[h]); });
      if (onProgress && xhr.upload) xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () {
        var parsed = parse(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300 && parsed) resolve(parsed);
        else reject(failure(xhr.status, parsed, xhr.getResponseHeader("Retry-After")));
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = function () { reject(failure(0, null, null)); };
      xhr.send(body === undefined ? null : body);
    });
  }

  function ask(id) { return send("GET", uploadsUrl + "/" + encodeURIComponent(id), undefined, {Accept: "application/json"}); }

  async function begin(file) {
    var key = storageKey(file);
    var id = recall(key);
    if (id) {
      try {
        return {file: file, key: key, state: await ask(id)};
      } catch (err) {
        if (retryable(err)) throw err;
        forget(key); // gone (cleaned up, or another account's): start again
      }
    }
    var state = await send("POST", uploadsUrl, JSON.stringify({filename: file.name, size: file.size, options: options()}),
                           {"Content-Type": "application/json"});
    remember(key, state.upload_id);
    return {file: file, key: key, state: state};
  }

  async function chunk(up) {
    var file = up.file, state = up.state, size = file.size, start = state.offset;
    var url = uploadsUrl + "/" + encodeURIComponent(state.upload_id);
    if (start >= size) return send("PUT", url, "", {"Content-Range": "bytes */" + size});
    var chunkBytes = parseInt(form.dataset.chunkBytes, 10) || 8 * 1024 * 1024; // the server's suggestion
    var end = Math.min(start + chunkBytes, size);
    return send("PUT", url, file.slice(start, end), {"Content-Range": "bytes " + start + "-" + (end - 1) + "/" + size},
                function (loaded) { show(start + loaded, size); });
  }

  async function run() {
    var up = current;
    var attempt = 0;
    while (!up.state.complete) {
      try {
        up.state = await chunk(up);
        attempt = 0;
        var pct = show(up.state.offset, up.file.size);
        say(up.state.complete ? "Uploaded: opening the job…"
            : "Uploading… " + pct + "% (" + mib(up.state.offset) + " of " + mib(up.file.size) + ")");
      } catch (err) {
        if (err.status === 409 && err.offset !== null) { up.state.offset = err.offset; continue; } // go on from there
        if (!retryable(err)) {
          forget(up.key); // refused for good (not a video, too large, gone): a new try starts afresh
          throw err;
        }
        attempt += 1;
        if (attempt >= MAX_ATTEMPTS) throw err;
        var wait = backoff(attempt, err);
        say("Upload interrupted (" + err.message + "): trying again in " + Math.round(wait / 1000) + " s…", false);
        await sleep(wait);
        try { up.state = await ask(up.state.upload_id); } catch (e) { /* the next PUT will tell */ }
      }
    }
    forget(up.key);
    show(up.file.size, up.file.size);
    document.dispatchEvent(new CustomEvent("reelfarm:upload-complete", {detail: {jobUrl: up.state.job_url}}));
    window.location.assign(up.state.job_url);
  }

  async function go(resuming) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    retryButton.hidden = true;
    box.hidden = false;
    try {
      if (!resuming) {
        var file = fileInput.files[0];
        say("Starting the upload…", false);
        current = await begin(file);
      } else {
        say("Resuming…", false);
        current.state = await ask(current.state.upload_id);
      }
      show(current.state.offset, current.file.size);
      await run();
    } catch (err) {
      say("Upload failed: " + err.message, true);
      if (retryable(err) || err.status === 409) retryButton.hidden = false;
      button.disabled = false;
      busy = false;
      return;
    }
  }

  form.addEventListener("submit", function (event) {
    if (event.submitter && event.submitter !== button) return; // the URL button posts the form
    var file = fileInput.files[0];
    event.preventDefault();
    box.hidden = false;
    if (!file) { say("Choose a video file first.", true); fileInput.focus(); return; }
    if (maxBytes && file.size > maxBytes) { say("That file is larger than the upload limit (" + mib(maxBytes) + ").", true); return; }
    if (!form.reportValidity()) return;
    go(false);
  });

  retryButton.addEventListener("click", function () { if (current) go(true); });
})();
