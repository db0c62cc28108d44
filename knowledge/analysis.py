"""Turn English and Chinese text into search terms, the same way for articles and questions.

One analyser for both databases: PostgreSQL stores its output as a tsvector (GIN-indexed)
and the embedded SQLite mode scores the very same terms in Python, so a question ranks the
same way in both modes.

* Latin letters and digits: NFKC-normalised, lower-cased, English stop words dropped,
  Snowball (Porter 2) stemmed: "Refunds" and "refunded" both become "refund".
* Chinese (no spaces): segmented by jieba's dictionary and HMM (the Rust port, rjieba) in
  search mode, which also emits the dictionary words inside a long word
  ("咖啡豆" -> "咖啡", "咖啡豆"), so a question that uses the shorter word still matches.
  Chinese stop words and punctuation are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Han ideographs (CJK Unified + extension A + compatibility); kana/hangul are rare here and
# fall back to per-character terms through the same path.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:['’][a-z]+)?")
_HAS_CJK = re.compile(rf"[{_CJK}]")

# Function words and the filler of chat questions ("hi, can you tell me how I ...").
ENGLISH_STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having
    he her here hers herself him himself his how i i'd i'll i'm i've if in into is isn't it it's
    its itself let's me more most mustn't my myself no nor not of off on once only or other ought
    our ours ourselves out over own same shan't she should shouldn't so some such than that that's
    the their theirs them themselves then there there's these they they'd they'll they're they've
    this those through to too under until up very was wasn't we we'd we'll we're we've were
    weren't what what's when when's where where's which while who who's whom why why's will with
    won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
    hi hello hey please pls thanks thank thx ok okay yes yeah question questions help wondering
    want wanted wanna need needs like would get got just also really still tell know anyone
    someone something anything way possible able us im dont cant
    """.split()
)

CHINESE_STOP_WORDS = frozenset(
    """
    的 了 是 我 你 您 他 她 它 我们 你们 他们 吗 呢 吧 啊 呀 哦 嗯 么 嘛 啦 着 过 地 得
    什么 怎么 怎样 怎么样 如何 为什么 为何 哪 哪里 哪儿 哪个 请问 请 一下 可以 可 能 能不能
    可不可以 会 会不会 要 想 想要 需要 有 有没有 没有 没 在 和 与 及 或 或者 就 都 也 还 又
    很 太 这 那 这个 那个 这样 那样 一个 个 把 被 给 让 好 你好 您好 谢谢 麻烦 问 问问 问题
    我想 我要 是不是 对 吗? 呢? 一 下 上 到 从 自己 知道 告诉 帮 帮忙 帮我 客服 时 后 能否
    """.split()
)


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def _segment(run: str) -> list[str]:
    import rjieba  # ~40 MB, 0.1 s to load: only when Chinese text shows up

    return rjieba.cut_for_search(run)


def contains_chinese(text: str) -> bool:
    return bool(_HAS_CJK.search(text))


def normalize(text: str) -> str:
    """Full-width to half-width, compatibility forms folded, lower case."""
    return unicodedata.normalize("NFKC", text).lower()


# Character n-grams of Chinese runs are extra terms, marked with this prefix and weighed
# less than words (see term_weight): they match when the dictionary cuts a phrase
# differently in the question and in the article ("发错货" -> 发错/货 vs 错货).
NGRAM_PREFIX = "_"
NGRAM_SIZES = (1, 2)
NGRAM_WEIGHTS = {1: 0.2, 2: 0.5}
_STOP_CHARS = frozenset(w for w in CHINESE_STOP_WORDS if len(w) == 1)


def term_weight(term: str) -> float:
    """How much one term counts: 1 for a word, less for a character n-gram."""
    if term.startswith(NGRAM_PREFIX):
        return NGRAM_WEIGHTS.get(len(term) - len(NGRAM_PREFIX), 1.0)
    return 1.0


def _ngrams(run: str) -> list[str]:
    out = []
    for size in NGRAM_SIZES:
        for i in range(len(run) - size + 1):
            gram = run[i : i + size]
            if size == 1 and gram in _STOP_CHARS:
                continue
            out.append(NGRAM_PREFIX + gram)
    return out


def analyze(text: str) -> list[str]:
    """Search terms of ``text`` in reading order (the order gives tsvector positions)."""
    terms: list[str] = []
    stem = _stemmer()
    for match in _RUN.finditer(normalize(text)):
        run = match.group()
        if _HAS_CJK.match(run):
            for word in _segment(run):
                word = word.strip()
                if word and word not in CHINESE_STOP_WORDS and _HAS_CJK.search(word):
                    terms.append(word)
            terms.extend(_ngrams(run))
        else:
            run = run.replace("’", "'")
            if run in ENGLISH_STOP_WORDS:
                continue
            word = run.split("'", 1)[0]  # "customer's" -> "customer"
            if len(word) < 2 and not word.isdigit():
                continue
            terms.append(stem.stemWord(word))
    return terms
