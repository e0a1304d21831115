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

  function fromHex(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
  }

  function node(left, right) { // RFC 9162: SHA-256(0x01 || left || right)
    var h = new StrongroomSHA256.Hasher();
    h.update(new Uint8Array([1])); h.update(fromHex(left)); h.update(fromHex(right));
    return h.hex();
  }

  /* RFC 9162 section 2.1.3.2: does the audit path lead from the leaf hash at
     index to root in a tree of size? Checked here as well as on the server. */
  function verifyInclusion(leafHash, index, size, proof, root) {
    if (index >= size) return false;
    var fn = index, sn = size - 1, r = leafHash;
    for (var i = 0; i < proof.length; i++) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = node(proof[i], r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = node(r, proof[i]);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && r === root;
  }

  /* origin, size and root (hex) from a checkpoint note's body */
  function checkpointBody(note) {
    var lines = note.split("\n"), raw = atob(lines[2] || ""), hex = "";
    for (var i = 0; i < raw.length; i++) hex += raw.charCodeAt(i).toString(16).padStart(2, "0");
    return { origin: lines[0], size: parseInt(lines[1], 10), root: hex };
  }
  window.StrongroomProof = { verifyInclusion: verifyInclusion, checkpointBody: checkpointBody };

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
    var checked = false;
    if (body.proof && body.checkpoint) {
      var cp = checkpointBody(body.checkpoint);
      checked = cp.size === body.proof.checkpoint_size && body.proof.leaves.length > 0;
      row(dl, t.proof, body.proof.leaves.length + " × " + t.leaves + ", " + t.tree_size + " " + body.proof.checkpoint_size, "proof");
      body.proof.leaves.forEach(function (leaf) {
        var ok = verifyInclusion(leaf.leaf_hash, leaf.index, cp.size, leaf.inclusion_proof, cp.root);
        checked = checked && ok;
        row(dl, (leaf.kind || "leaf") + " #" + leaf.index, (ok ? "✔ " : "✘ ") + leaf.leaf_hash + " ← " + leaf.inclusion_proof.length + " " + t.hashes, "leaf");
      });
      row(dl, t.proof_here, checked ? "✔" : "✘", "proof-here");
    }
    result.appendChild(dl);
    if (body.checkpoint) {
      var pre = document.createElement("pre"); pre.className = "checkpoint"; pre.textContent = body.checkpoint;
      result.appendChild(pre);
    }
    result.setAttribute("data-proof-checked", checked ? "true" : "false");
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
