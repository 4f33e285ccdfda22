"""Reference answers and interviewer material, one module per lab (named for the symptom).

Never part of the installed package: a candidate with `labsupport` installed cannot import the
answer. Each module gives:
- the ground-truth functions the lab's checks compare the learner's answers with;
- `answer_key(seed)`: the variant's ground truth (what a seed changes, what must be found);
- `RUBRIC`: {"diagnosis"|"fix"|"reasoning": {"strong"|"adequate"|"weak": what it looks like}};
- `expected(seed)`: {evidence or answer: value} for the interviewer sheet (`srelab interview`).
"""
