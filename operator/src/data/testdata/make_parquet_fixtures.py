"""Writes the tiny parquet fixtures the data tests read, in the column layouts of the Hugging Face
datasets they imitate (allenai/ai2_arc, Rowan/hellaswag, ybisk/piqa, cais/mmlu, and a web-text
corpus). Written by pyarrow, as `datasets` writes them. Rerun after editing:

    python -m venv /tmp/v && /tmp/v/bin/pip install pyarrow && /tmp/v/bin/python make_parquet_fixtures.py
"""
import os

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, table, **kwargs):
    pq.write_table(table, os.path.join(HERE, name), **kwargs)


TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé survives: naïve café, 東京, emoji 🙂.",
    "",
    "def add(a, b):\n    return a + b\n",
    "12 + 30 = 42",
    "A longer paragraph. " * 20,
]
web = pa.table({
    "id": [f"doc-{i}" for i in range(len(TEXTS))],
    "text": TEXTS,
    "url": [f"https://example.org/{i}" for i in range(len(TEXTS))],
})
write("web.parquet", web, row_group_size=4)
write("web-zstd.parquet", web, compression="zstd")
write("web-content.parquet", pa.table({"id": ["a", "b"], "content": ["one", "two"]}))

arc = pa.table({
    "id": ["Mercury_1", "NYSEDREGENTS_2"],
    "question": ["Which gas do plants absorb from the air?", "What is 2 + 2?"],
    "choices": [
        {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]},
        {"text": ["3", "4", "5"], "label": ["1", "2", "3"]},
    ],
    "answerKey": ["B", "2"],
})
write("arc.parquet", arc)

hellaswag = pa.table({
    "ind": [4, 5],
    "activity_label": ["Removing ice from car", "Baking cookies"],
    "ctx_a": ["Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.", "A woman is in a kitchen."],
    "ctx_b": ["then", "she"],
    "ctx": ["unused", "unused"],
    "endings": [
        [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the snow on his car."],
        [" puts the tray in the oven [title] Wait ten minutes.", " sings loudly.", " reads a book.", " leaves the house."],
    ],
    "source_id": ["activitynet~v_-1IBHYS3L-Y", "wikihow~1"],
    "split": ["train", "train"],
    "split_type": ["indomain", "indomain"],
    "label": ["3", "0"],
})
write("hellaswag.parquet", hellaswag)

piqa = pa.table({
    "goal": ["How do I ready a guinea pig cage for it's new occupants?", "To boil water"],
    "sol1": ["Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.", "put it in the freezer"],
    "sol2": ["Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.", "heat it on the stove"],
    "label": pa.array([0, 1], type=pa.int64()),
})
write("piqa.parquet", piqa)

mmlu = pa.table({
    "question": ["What is the capital of France?", "Which number is prime?"],
    "subject": ["geography", "elementary_mathematics"],
    "choices": [["Berlin", "Paris", "Rome", "Madrid"], ["4", "6", "7", "9"]],
    "answer": pa.array([1, 2], type=pa.int64()),
})
write("mmlu.parquet", mmlu)

# SmolTalk's layout (a list of {content, role} structs) and UltraFeedback binarized's (prompt
# text, chosen/rejected as such lists including the prompt turn).
chat = pa.table({
    "messages": [
        [{"content": "What is 2 + 3?", "role": "user"}, {"content": "2 + 3 = 5", "role": "assistant"}],
        [{"content": "Be brief.", "role": "system"}, {"content": "Name a colour.", "role": "user"},
         {"content": "Blue.", "role": "assistant"}],
    ],
    "source": ["a", "b"],
})
write("chat.parquet", chat)
preference = pa.table({
    "prompt": ["What is 2 + 3?"],
    "chosen": [[{"content": "What is 2 + 3?", "role": "user"}, {"content": "2 + 3 = 5", "role": "assistant"}]],
    "rejected": [[{"content": "What is 2 + 3?", "role": "user"}, {"content": "2 + 3 = 6", "role": "assistant"}]],
    "score_chosen": [9.0],
    "score_rejected": [2.0],
})
write("preference.parquet", preference)
