// client.mjs - the openai npm client against infinid's HTTP gateway, for
// tests/t_http.c: streams a completion and gets embeddings, then prints one
// JSON line with what it received.
// usage: node client.mjs BASE_URL TOKEN STREAM_ID
import OpenAI from "openai";

const [base, token, stream] = process.argv.slice(2);
const client = new OpenAI({
	baseURL: base,
	apiKey: token,
	defaultHeaders: { "X-Infini-Stream": stream },
	maxRetries: 0,
});

const out = { chunks: 0, text: "", finish: null };
out.models = [];
for await (const m of client.models.list())
	out.models.push(m.id);
const s = await client.completions.create({
	model: "infinid", prompt: "Hello", max_tokens: 6, temperature: 0,
	stream: true,
});
for await (const c of s) {
	out.chunks++;
	out.text += c.choices[0].text;
	if (c.choices[0].finish_reason)
		out.finish = c.choices[0].finish_reason;
}
// The client's default encoding is base64, decoded back to floats.
const e = await client.embeddings.create({ model: "infinid",
	input: ["abc", "xyz"] }, { headers: { "X-Infini-Stream": stream + "-e" } });
out.embeddings = e.data.map((d) => d.embedding);
try {
	await new OpenAI({ baseURL: base, apiKey: "wrong-token-0123456789",
		maxRetries: 0 }).completions.create({ model: "m", prompt: "x",
		user: "stream:" + stream });
} catch (err) {
	out.bad_token_status = err.status;
	out.bad_token_type = err.error ? err.error.type : null;
}
console.log(JSON.stringify(out));
