"""Reference for the chat-template parity test: Hugging Face transformers' apply_chat_template.

stdin: {"tokenizer_dir": DIR, "conversations": [[{role, content}, ...], ...],
        "masked_template": JINJA or null}
stdout: [{"text", "ids", "mask"}] per conversation: the rendered text and ids of
apply_chat_template with the tokenizer_config.json's own template, and the assistant_masks of
return_assistant_tokens_mask with `masked_template` (the same template with {% generation %}
around what is trained on), or null when none is given.
"""
import json
import sys

from transformers import AutoTokenizer

request = json.load(sys.stdin)
tokenizer = AutoTokenizer.from_pretrained(request["tokenizer_dir"])
out = []
for messages in request["conversations"]:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    ids = list(encoded["input_ids"])
    mask = None
    if request.get("masked_template"):
        masked = tokenizer.apply_chat_template(
            messages,
            chat_template=request["masked_template"],
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        if list(masked["input_ids"]) != ids:
            raise SystemExit("the masked template renders different ids than the template")
        mask = list(masked["assistant_masks"])
    out.append({"text": text, "ids": ids, "mask": mask})
json.dump(out, sys.stdout)
