// oracle.js - test oracle: Hugging Face tokenizers (the Rust library, through
// its Node binding) encodes and decodes a list of documents.  Test use only.
//
//   node oracle.js TOKENIZER.json DOCS.json OUT.json
//
// DOCS.json is a JSON array of strings; OUT.json gets one
// {"ids": [...], "dec": "..."} per document: the ids without special tokens
// added (as the daemon encodes text) and the decode of those ids with
// special tokens kept.
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@anush008/tokenizers");

async function main() {
  const [tokPath, docsPath, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error("usage: node oracle.js TOKENIZER.json DOCS.json OUT.json");
    process.exit(2);
  }
  const tok = Tokenizer.fromFile(tokPath);
  const docs = JSON.parse(fs.readFileSync(docsPath, "utf8"));
  const opts = { addSpecialTokens: false };
  const out = [];
  for (const d of docs) {
    const enc = await tok.encode(d, null, opts);
    const ids = Array.from(enc.getIds());
    const dec = await tok.decode(ids, false);
    out.push({ ids, dec });
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
}

main().catch((e) => { console.error("oracle.js:", e.message); process.exit(1); });
