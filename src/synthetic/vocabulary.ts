/** One catalog category: the words its item titles and descriptions are built from. */
export interface CategoryVocabulary {
  readonly name: string;
  readonly nouns: readonly string[];
  readonly adjectives: readonly string[];
  readonly features: readonly string[];
  readonly uses: readonly string[];
  readonly tags: readonly string[];
  readonly price: readonly [number, number];
}

/** Categories double as the latent topics users are interested in. */
export const CATEGORIES: readonly CategoryVocabulary[] = [
  {
    name: 'running',
    nouns: ['running shoe', 'trail shoe', 'running jacket', 'hydration vest', 'running tights'],
    adjectives: ['lightweight', 'cushioned', 'breathable', 'responsive', 'reflective'],
    features: [
      'a carbon-plated midsole that returns energy on every stride',
      'a grippy outsole for wet trails and loose gravel',
      'a seamless knit upper that wicks sweat away',
      'reflective details for early morning and night runs',
    ],
    uses: ['marathon training', 'tempo runs', 'muddy trail races', 'easy recovery jogs'],
    tags: ['running', 'fitness', 'outdoor', 'marathon', 'trail'],
    price: [35, 220],
  },
  {
    name: 'cooking',
    nouns: ['cast iron skillet', 'chef knife', 'dutch oven', 'saucepan', 'spice grinder'],
    adjectives: ['pre-seasoned', 'forged', 'enamelled', 'nonstick', 'hand-finished'],
    features: [
      'even heat distribution from stovetop to oven',
      'a full-tang blade ground to a razor edge',
      'a tight-fitting lid that locks in moisture',
      'riveted handles that stay cool while you cook',
    ],
    uses: ['slow-cooked stews', 'searing steaks', 'weeknight pasta', 'baking crusty bread'],
    tags: ['kitchen', 'cooking', 'cookware', 'chef', 'baking'],
    price: [15, 350],
  },
  {
    name: 'photography',
    nouns: ['mirrorless camera', 'prime lens', 'carbon tripod', 'camera bag', 'speedlight'],
    adjectives: ['full-frame', 'weather-sealed', 'compact', 'fast-aperture', 'stabilised'],
    features: [
      'a back-illuminated sensor with excellent low-light performance',
      'silent autofocus that tracks eyes and moving subjects',
      'quick-release plates and a load capacity of twelve kilograms',
      'padded dividers that protect lenses on the move',
    ],
    uses: ['street photography', 'wedding shoots', 'landscape trips', 'astrophotography'],
    tags: ['camera', 'photography', 'lens', 'travel', 'creative'],
    price: [40, 2400],
  },
  {
    name: 'gardening',
    nouns: [
      'pruning shears',
      'raised garden bed',
      'watering can',
      'seed starter kit',
      'compost bin',
    ],
    adjectives: ['ergonomic', 'rust-resistant', 'cedar', 'self-watering', 'heavy-duty'],
    features: [
      'hardened steel blades that cut cleanly through branches',
      'untreated wood that is safe for growing vegetables',
      'a long spout for reaching plants at the back of the border',
      'drainage holes and a humidity dome for strong seedlings',
    ],
    uses: ['growing tomatoes', 'balcony herb gardens', 'spring planting', 'tidying hedges'],
    tags: ['garden', 'plants', 'outdoor', 'vegetables', 'green'],
    price: [8, 260],
  },
  {
    name: 'gaming',
    nouns: [
      'mechanical keyboard',
      'gaming mouse',
      'wireless headset',
      'game controller',
      'monitor',
    ],
    adjectives: ['low-latency', 'rgb', 'hot-swappable', 'high-refresh', 'wireless'],
    features: [
      'tactile switches rated for eighty million keystrokes',
      'a precise optical sensor with adjustable sensitivity',
      'surround sound and a detachable noise-cancelling microphone',
      'a fast panel that keeps motion sharp in competitive games',
    ],
    uses: ['competitive shooters', 'long strategy sessions', 'streaming', 'couch co-op nights'],
    tags: ['gaming', 'pc', 'esports', 'console', 'tech'],
    price: [25, 900],
  },
  {
    name: 'books',
    nouns: ['mystery novel', 'science fiction saga', 'biography', 'cookbook', 'history of rome'],
    adjectives: ['bestselling', 'award-winning', 'illustrated', 'annotated', 'hardcover'],
    features: [
      'a gripping plot with a twist you will not see coming',
      'meticulous research told with warmth and humour',
      'more than one hundred recipes with step-by-step photos',
      'maps, timelines and a foreword by a leading historian',
    ],
    uses: ['a rainy weekend', 'the daily commute', 'book club evenings', 'bedtime reading'],
    tags: ['books', 'reading', 'fiction', 'nonfiction', 'literature'],
    price: [6, 60],
  },
  {
    name: 'music',
    nouns: ['acoustic guitar', 'digital piano', 'studio microphone', 'drum pad', 'ukulele'],
    adjectives: ['solid-top', 'weighted-key', 'condenser', 'portable', 'vintage-style'],
    features: [
      'a warm, balanced tone that opens up as it is played',
      'eighty-eight hammer-action keys and built-in speakers',
      'a cardioid pattern that isolates vocals from room noise',
      'velocity-sensitive pads with hundreds of built-in sounds',
    ],
    uses: ['home recording', 'learning your first chords', 'live gigs', 'practice at night'],
    tags: ['music', 'instrument', 'recording', 'studio', 'audio'],
    price: [30, 1500],
  },
  {
    name: 'camping',
    nouns: ['backpacking tent', 'sleeping bag', 'camp stove', 'headlamp', 'trekking poles'],
    adjectives: ['ultralight', 'waterproof', 'four-season', 'packable', 'insulated'],
    features: [
      'a freestanding frame that pitches in under five minutes',
      'down fill rated comfortable to minus five degrees',
      'a simmer control for cooking real meals outdoors',
      'a rechargeable battery that lasts a full weekend',
    ],
    uses: ['alpine treks', 'family campouts', 'overnight hikes', 'festival weekends'],
    tags: ['camping', 'hiking', 'outdoor', 'adventure', 'travel'],
    price: [15, 650],
  },
  {
    name: 'skincare',
    nouns: ['vitamin c serum', 'moisturiser', 'sunscreen', 'cleansing balm', 'retinol cream'],
    adjectives: ['fragrance-free', 'hydrating', 'dermatologist-tested', 'gentle', 'brightening'],
    features: [
      'a lightweight formula that absorbs without a greasy finish',
      'ceramides and hyaluronic acid to restore the skin barrier',
      'broad-spectrum protection that leaves no white cast',
      'a gentle texture suitable for sensitive skin',
    ],
    uses: ['a morning routine', 'dry winter skin', 'beach holidays', 'evening self-care'],
    tags: ['skincare', 'beauty', 'selfcare', 'wellness', 'routine'],
    price: [9, 120],
  },
  {
    name: 'home-office',
    nouns: ['standing desk', 'ergonomic chair', 'monitor arm', 'desk lamp', 'webcam'],
    adjectives: ['height-adjustable', 'mesh-back', 'minimalist', 'dimmable', 'full-hd'],
    features: [
      'dual motors and memory presets for sitting and standing',
      'adjustable lumbar support for long working days',
      'cable management that keeps the desk tidy',
      'a warm-to-cool colour range that reduces eye strain',
    ],
    uses: ['remote work', 'video calls', 'late-night study sessions', 'a small apartment'],
    tags: ['office', 'work', 'ergonomic', 'desk', 'productivity'],
    price: [25, 900],
  },
  {
    name: 'coffee',
    nouns: ['espresso machine', 'burr grinder', 'pour-over kettle', 'french press', 'coffee beans'],
    adjectives: ['single-origin', 'stainless', 'gooseneck', 'programmable', 'freshly roasted'],
    features: [
      'fifteen bars of pressure and a steam wand for silky milk',
      'conical burrs with forty grind settings',
      'precise temperature control for delicate light roasts',
      'tasting notes of dark chocolate, cherry and caramel',
    ],
    uses: ['a slow weekend brunch', 'the morning rush', 'home barista practice', 'gifting'],
    tags: ['coffee', 'espresso', 'kitchen', 'barista', 'morning'],
    price: [12, 1200],
  },
  {
    name: 'toys',
    nouns: ['building blocks set', 'wooden train set', 'plush bear', 'puzzle', 'science kit'],
    adjectives: ['educational', 'colourful', 'eco-friendly', 'award-winning', 'creative'],
    features: [
      'chunky pieces that are easy for small hands to grip',
      'sustainably sourced wood and non-toxic paints',
      'one thousand pieces with a glossy finish',
      'twenty experiments that make chemistry fun',
    ],
    uses: ['rainy afternoons', 'birthday presents', 'family game night', 'early learning'],
    tags: ['toys', 'kids', 'family', 'learning', 'gift'],
    price: [8, 150],
  },
  {
    name: 'cycling',
    nouns: ['road bike', 'bike helmet', 'cycling computer', 'bike lights', 'saddle bag'],
    adjectives: ['aerodynamic', 'carbon', 'gps-enabled', 'rechargeable', 'commuter-friendly'],
    features: [
      'a stiff frame that climbs eagerly and descends with confidence',
      'MIPS protection and generous ventilation channels',
      'turn-by-turn navigation and power meter support',
      'a bright beam that makes you visible in city traffic',
    ],
    uses: ['weekend group rides', 'daily commuting', 'gran fondo events', 'gravel adventures'],
    tags: ['cycling', 'bike', 'fitness', 'commute', 'outdoor'],
    price: [20, 3500],
  },
  {
    name: 'pets',
    nouns: ['dog bed', 'cat tree', 'dog harness', 'automatic feeder', 'pet carrier'],
    adjectives: ['orthopedic', 'washable', 'no-pull', 'programmable', 'airline-approved'],
    features: [
      'memory foam that supports older joints',
      'sisal-wrapped posts that save your sofa',
      'padded straps that spread pressure across the chest',
      'portion control and a voice recording for meal times',
    ],
    uses: ['a new puppy', 'indoor cats', 'long walks', 'travelling with pets'],
    tags: ['pets', 'dog', 'cat', 'animals', 'home'],
    price: [10, 250],
  },
];
