"""The facts and phrasings the synthetic chat corpus draws on: data only, kept apart from
the generators in :mod:`strata.training.chat_corpus`.

Tuples rather than lists or dicts: module-level data must stay immutable.
"""

from __future__ import annotations

UNKNOWN_ANSWER = "I am a tiny demo model and do not know that."

STRATA_DESCRIPTION = (
    "Strata is a serving platform for generative AI. It offers an OpenAI-compatible "
    "API, request batching, multiple replicas and metrics."
)

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are Strata Chat Tiny, a small demo assistant.",
    "You are a friendly assistant. Keep answers short.",
    "Answer briefly and politely.",
)

CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("the United Kingdom", "London"),
    ("Ireland", "Dublin"),
    ("the Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"),
    ("Austria", "Vienna"),
    ("Switzerland", "Bern"),
    ("Poland", "Warsaw"),
    ("Sweden", "Stockholm"),
    ("Norway", "Oslo"),
    ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"),
    ("Greece", "Athens"),
    ("Russia", "Moscow"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("South Korea", "Seoul"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"),
    ("the United States", "Washington, D.C."),
    ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"),
    ("Australia", "Canberra"),
)

COLORS: tuple[tuple[str, str], ...] = (
    ("the sky", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("a banana", "yellow"),
    ("a strawberry", "red"),
    ("an orange", "orange"),
    ("coal", "black"),
    ("the sun", "yellow"),
    ("a lemon", "yellow"),
    ("a tomato", "red"),
    ("milk", "white"),
    ("a frog", "green"),
    ("the ocean", "blue"),
    ("chocolate", "brown"),
    ("a carrot", "orange"),
    ("an eggplant", "purple"),
    ("a cherry", "red"),
    ("a cloud", "white"),
    ("a crow", "black"),
    ("a pumpkin", "orange"),
)

DAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

SPELLING_WORDS: tuple[str, ...] = (
    "cat",
    "dog",
    "sun",
    "moon",
    "tree",
    "book",
    "fish",
    "bird",
    "house",
    "water",
    "apple",
    "green",
    "happy",
    "river",
    "music",
    "light",
    "table",
    "chair",
    "cloud",
    "train",
    "model",
    "token",
    "server",
    "strata",
    "hello",
    "world",
    "bread",
    "smile",
)

NUMBER_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
)

JOKES: tuple[str, ...] = (
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "What do you call a fake noodle? An impasta.",
    "Why did the math book look sad? It had too many problems.",
    "Why can't a bicycle stand on its own? It is two tired.",
    "What do you call a bear with no teeth? A gummy bear.",
)

UNKNOWN_QUESTIONS: tuple[str, ...] = (
    "What is the meaning of life?",
    "Who will win the next election?",
    "What will the weather be tomorrow?",
    "What is the stock price of Acme today?",
    "Can you explain quantum gravity in detail?",
    "What is my password?",
    "Who won the football game last night?",
    "What is the population of Mars?",
    "Write a legal contract for my company.",
    "What is the cure for the common cold?",
    "How many grains of sand are on Earth?",
    "What did I eat for breakfast?",
    "Translate this book into Klingon.",
    "What is the best programming language?",
    "Predict the lottery numbers.",
    "Who is the richest person in 2040?",
)

# Slot fillers for templated out-of-scope questions. Many distinct unknown questions
# teach the model to decline anything outside its topics instead of pattern-matching
# a known answer (e.g. answering an arithmetic fact to "What is your favorite food?").
UNKNOWN_FAVORITES: tuple[str, ...] = ("food", "movie", "song", "book", "sport", "animal", "city", "game")
UNKNOWN_BOOKS: tuple[str, ...] = ("Hamlet", "War and Peace", "Don Quixote", "The Odyssey", "Moby Dick")
UNKNOWN_PLACES: tuple[str, ...] = ("Atlantis", "Narnia", "Peru", "Vietnam", "Nigeria", "Iceland", "Chile")
UNKNOWN_TASKS: tuple[str, ...] = (
    "bake a cake",
    "fix my car",
    "learn to swim",
    "file my taxes",
    "install Linux",
    "train a dog",
    "write a novel",
    "cure a headache",
    "invest my money",
    "build a house",
)
UNKNOWN_TOPICS: tuple[str, ...] = (
    "black holes",
    "the Roman Empire",
    "quantum physics",
    "economics",
    "dinosaurs",
    "volcanoes",
    "the human brain",
    "ancient Egypt",
    "climate change",
    "chess openings",
)
UNKNOWN_PEOPLE: tuple[str, ...] = (
    "the president of Mars",
    "the king of the moon",
    "my neighbour",
    "the best singer",
    "my teacher",
)
