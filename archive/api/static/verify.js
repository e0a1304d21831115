/* Verify-your-copy: hash the chosen file here, in chunks, then ask the archive
   by hash only. No byte of the file leaves the browser. */
"use strict";
(function () {
  var CHUNK = 4 * 1024 * 1024;
  var input = document.getElementById("file");
  var status = document.getElementById("status");
  var hashOut = document.getElementById("computed");
  var result = document.getElementById("result");
  var t = JSON.parse(document.getElementById("strings").textContent);

  function show(el, text) { el.textContent = text; }

  async function hashFile(file) {
    var hasher = new StrongroomSHA256.Hasher();
    for (var off = 0; off < file.size; off += CHUNK) {
      var buf = await file.slice(off, off + CHUNK).arrayBuffer();
      hasher.update(new Uint8Array(buf));
      show(status, t.hashing + " " + Math.min(100, Math.floor(((off + CHUNK) / file.size) * 100)) + "%");
    }
    return hasher.hex();
  }

  function row(dl, term, value, cls) {
    var dt = document.createElement("dt"); dt.textContent = term;
    var dd = document.createElement("dd");
    var code = document.createElement("code"); code.textContent = value;
    if (cls) code.className = cls;
    dd.appendChild(code); dl.appendChild(dt); dl.appendChild(dd);
  }

  async function check(file) {
    result.textContent = ""; result.removeAttribute("data-outcome");
    hashOut.textContent = "";
    var digest = await hashFile(file);
    show(hashOut, digest);
    show(status, t.asking);
    var response = await fetch("/v1/public/lookup/" + digest, { headers: { Accept: "application/json" } });
    var body = await response.json();
    if (!response.ok) { show(status, (body.error && body.error.message) || response.status); return; }
    var h2 = document.createElement("h2");
    if (!body.archived) {
      h2.textContent = t.no_match; result.appendChild(h2);
      result.setAttribute("data-outcome", "no-match"); show(status, t.done); return;
    }
    h2.textContent = t.match; result.appendChild(h2);
    var dl = document.createElement("dl");
    row(dl, t.sealed_at, body.sealed_at, "sealed-at");
    row(dl, t.manifest, (body.manifest.verified ? "✔ " : "✘ ") + body.manifest.keyid + " " + body.manifest.envelope_sha256, "manifest");
    if (body.proof) {
      row(dl, t.proof, body.proof.leaves.length + " × " + t.leaves + ", " + t.tree_size + " " + body.proof.checkpoint_size, "proof");
      body.proof.leaves.forEach(function (leaf) {
        row(dl, (leaf.kind || "leaf") + " #" + leaf.index, leaf.leaf_hash + " ← " + leaf.inclusion_proof.length + " " + t.hashes, "leaf");
      });
    }
    result.appendChild(dl);
    if (body.checkpoint) {
      var pre = document.createElement("pre"); pre.className = "checkpoint"; pre.textContent = body.checkpoint;
      result.appendChild(pre);
    }
    result.setAttribute("data-outcome", "match");
    show(status, t.done);
  }

  input.addEventListener("change", function () {
    if (input.files.length) check(input.files[0]).catch(function (e) { show(status, String(e)); });
  });
  var drop = document.getElementById("drop");
  drop.addEventListener("dragover", function (e) { e.preventDefault(); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    if (e.dataTransfer.files.length) check(e.dataTransfer.files[0]).catch(function (x) { show(status, String(x)); });
  });
})();
