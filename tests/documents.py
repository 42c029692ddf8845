"""Test documents: English prose that passes the default filters."""

from __future__ import annotations


def english_documents(n: int, seed: int = 0) -> list[str]:
    """`n` distinct English prose documents of 60-140 words that pass the default
    heuristic filters (built from a fixed pool of sentences, seeded)."""
    import random

    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = []
        sentences = rng.sample(_SENTENCES, k=len(_SENTENCES))
        while len(words) < 60 + (i % 80):
            words.extend(sentences.pop().split())
        docs.append(f"Document {i} of the collection. " + " ".join(words))
    return docs


_SENTENCES = [
    "The river was wide and slow, and the old bridge creaked under the weight of the carts.",
    "She opened the window to let in the morning air and listened to the birds in the garden.",
    "Our team measured the temperature of the water every hour for three days in a row.",
    "When the library closed for repairs, the students moved their study group to the cafe.",
    "He wrote a short letter to his sister describing the mountains and the quiet village.",
    "The committee agreed that the new schedule would start at the beginning of next month.",
    "Farmers in the valley planted wheat in the spring and harvested it late in the summer.",
    "A good recipe for bread needs flour, water, salt and a little patience with the dough.",
    "The museum displays paintings from many centuries, including a few rare portraits.",
    "They walked along the coast until the lighthouse appeared through the evening fog.",
    "Most of the questions on the test were about history, geography and the arts.",
    "The engineer explained how the pump moves water from the lake to the storage tank.",
    "In the evening the family gathered around the table to share stories about the day.",
    "The train was late because a tree had fallen across the tracks during the storm.",
    "Children in the school learn to read, write and count before they are seven years old.",
    "The doctor told him to rest for a week and to drink plenty of water every day.",
    "Our neighbours keep a small boat that they use for fishing on calm summer mornings.",
    "The report shows that sales grew slowly in the first half of the year and then fell.",
    "Snow covered the roads, so the bus driver went carefully and arrived an hour late.",
    "The gardener cut the roses back in the autumn so that they would grow strong again.",
    "It is often said that a walk in the forest is the best cure for a troubled mind.",
    "The city council voted to build a new park with paths, benches and a small pond.",
    "He learned to play the piano as a child and still practises for an hour each night.",
    "The market sells fresh fruit, vegetables, cheese and bread from the nearby farms.",
    "During the meeting the director described the plans for the next three years.",
    "We stayed in a small hotel near the station, where the rooms were clean and quiet.",
    "Scientists have studied the behaviour of these birds for more than forty years.",
    "The old clock in the hall has been in the family for four generations now.",
    "On weekends the town square fills with musicians, painters and people selling books.",
    "The teacher asked the class to write an essay about a place they would like to visit.",
]
