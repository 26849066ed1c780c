// tok_hf.js - Hugging Face tokenizers (Rust, through its Node binding) on
// the same measurements as bench-tok: load time, resident memory added by
// the loaded tokenizer, and encode MB/s over the corpus, one document at a
// time (one encode in flight: single thread).  Run by bench/run_tok.sh.
//
//   node tok_hf.js TOKENIZER.json DOCS.json [REPEAT]
"use strict";
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require(path.join(__dirname,
  "../tools/tok-oracle/node_modules/@anush008/tokenizers"));

async function main() {
  const [tokPath, docsPath, rep] = process.argv.slice(2);
  const repeat = rep ? parseInt(rep) : 3;
  const docs = JSON.parse(fs.readFileSync(docsPath, "utf8"));
  if (global.gc) global.gc();
  const rss0 = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  if (global.gc) global.gc();
  const rss1 = process.memoryUsage().rss;
  const opts = { addSpecialTokens: false };
  let best = 1e30, bytes = 0, ntok = 0;
  for (let r = 0; r < repeat; r++) {
    bytes = 0; ntok = 0;
    const a = process.hrtime.bigint();
    for (const d of docs) {
      const enc = await tok.encode(d, null, opts);
      ntok += enc.getLength();
      bytes += Buffer.byteLength(d, "utf8");
    }
    const el = Number(process.hrtime.bigint() - a) / 1e9;
    if (el < best) best = el;
  }
  console.log(`impl=hf load_s=${load.toFixed(3)} rss_mb=${((rss1 - rss0) /
    1048576).toFixed(1)} encode_mb_s=${(bytes / best / 1e6).toFixed(2)} ` +
    `bytes=${bytes} tokens=${ntok}`);
}

main().catch((e) => { console.error("tok_hf.js:", e.message); process.exit(1); });
