"""Accuracy of language identification on a multilingual set written for this test:
22 languages (`DEFAULT_LANGUAGES`), each as short phrases, single sentences and a paragraph,
plus documents mixing two languages (labelled with the main one). The default backend must
be at least as accurate as lingua's high-accuracy mode, measured here, and deterministic.

`benchmarks/language_id.py` reads `SAMPLES` from this file for its hand-written set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.text.language import DEFAULT_BACKEND, DEFAULT_LANGUAGES, LanguageIdentifier

# A few words each.
PHRASES = {
    "en": ["See you tomorrow", "Thank you very much"],
    "de": ["Vielen Dank für alles", "Bis morgen früh"],
    "fr": ["À demain matin", "Merci beaucoup mon ami"],
    "es": ["Muchas gracias por todo", "Hasta mañana"],
    "it": ["Grazie mille a tutti", "Buona notte ragazzi"],
    "pt": ["Muito obrigado por tudo", "Até amanhã"],
    "nl": ["Tot morgen allemaal", "Dank je wel"],
    "pl": ["Dziękuję bardzo", "Do zobaczenia jutro"],
    "ru": ["Спасибо большое", "До завтра, друзья"],
    "uk": ["Дякую, друже", "Добрий вечір усім"],
    "cs": ["Děkuji mnohokrát", "Uvidíme se zítra"],
    "sv": ["Tack så mycket", "Vi ses i morgon"],
    "da": ["Tak for i dag", "Vi ses i morgen"],
    "fi": ["Kiitos paljon", "Nähdään huomenna"],
    "tr": ["Çok teşekkür ederim", "Yarın görüşürüz"],
    "ar": ["شكرا جزيلا", "أراك غدا"],
    "zh": ["非常感谢", "明天见"],
    "ja": ["ありがとうございます", "また明日"],
    "ko": ["감사합니다", "내일 봐요"],
    "hi": ["बहुत धन्यवाद", "कल मिलते हैं"],
    "id": ["Terima kasih banyak", "Sampai jumpa besok"],
    "vi": ["Cảm ơn rất nhiều", "Hẹn gặp lại ngày mai"],
}

# One sentence each.
SHORT = {
    "en": [
        "The library closes early on Sundays, so please return your books before four o'clock.",
        "Can you tell me which platform the next train to the airport leaves from?",
        "Our neighbours planted three apple trees in their garden last spring.",
    ],
    "de": [
        "Kannst du mir bitte sagen, wann der letzte Bus in die Stadt fährt?",
        "Meine Großmutter hat jeden Sonntag einen Apfelkuchen für die ganze Familie gebacken.",
        "Wegen des starken Regens wurde das Fußballspiel am Samstag abgesagt.",
    ],
    "fr": [
        "Pourriez-vous m'indiquer le chemin de la gare, s'il vous plaît ?",
        "Nous avons passé nos vacances dans un petit village au bord de la mer en Bretagne.",
        "Le boulanger ouvre sa boutique à six heures chaque matin, même le dimanche.",
    ],
    "es": [
        "¿Sabes a qué hora abre la farmacia que está al lado del mercado?",
        "Mi hermano pequeño aprendió a montar en bicicleta durante las vacaciones de verano.",
        "El museo de la ciudad ofrece visitas guiadas gratuitas todos los domingos por la mañana.",
    ],
    "it": [
        "Domani mattina andiamo al mercato a comprare frutta e verdura fresca.",
        "Il treno per Milano è in ritardo di venti minuti a causa di un guasto.",
        "Mia zia prepara sempre le lasagne quando veniamo a trovarla la domenica.",
    ],
    "pt": [
        "Você sabe se a padaria da esquina já está aberta a esta hora?",
        "No próximo mês vamos viajar para o norte do país para visitar os nossos avós.",
        "O jogo de futebol foi adiado por causa da chuva forte que caiu durante a tarde.",
    ],
    "nl": [
        "Weet jij hoe laat de winkels op zaterdag in het centrum dichtgaan?",
        "Mijn broer fietst elke dag twintig kilometer naar zijn werk, ook als het regent.",
        "Het nieuwe zwembad in onze wijk wordt volgende maand eindelijk geopend.",
    ],
    "pl": [
        "Czy możesz mi powiedzieć, o której godzinie odjeżdża ostatni pociąg do Krakowa?",
        "Moja babcia co niedzielę piecze szarlotkę dla całej rodziny.",
        (
            "Wczoraj wieczorem oglądaliśmy z przyjaciółmi bardzo ciekawy film o historii naszego "
            "miasta."
        ),
    ],
    "ru": [
        "Скажите, пожалуйста, как пройти к ближайшей станции метро?",
        "Каждое лето мы ездим к бабушке в деревню и собираем там грибы и ягоды.",
        "Завтра в школе будет концерт, и мой сын будет играть на скрипке.",
    ],
    "uk": [
        "Підкажіть, будь ласка, де тут найближча аптека?",
        "Щонеділі ми з родиною ходимо до парку, щоб погодувати качок біля ставка.",
        "Моя сестра вчиться в університеті й мріє стати лікаркою.",
    ],
    "cs": [
        "Můžete mi prosím říct, kde je nejbližší zastávka tramvaje?",
        "O víkendu jsme s dětmi jeli na výlet do hor a celý den jsme chodili po lese.",
        "Naše sousedka peče ty nejlepší koláče v celé vesnici.",
    ],
    "sv": [
        "Vet du när nästa buss till centralstationen går?",
        "Vi brukar plocka blåbär i skogen bakom huset i slutet av augusti.",
        "Min syster har precis flyttat till en liten lägenhet i Göteborg.",
    ],
    "da": [
        "Ved du, hvornår butikkerne lukker på lørdag?",
        "Min farfar har boet i det samme hus ved havet i over halvtreds år.",
        "Vi skal cykle til stranden i morgen, hvis det ikke regner.",
    ],
    "fi": [
        "Tiedätkö, mihin aikaan kirjasto aukeaa huomenna aamulla?",
        "Kävimme viime kesänä mökillä järven rannalla ja saunoimme joka ilta.",
        "Minun veljeni opiskelee yliopistossa tietotekniikkaa.",
    ],
    "tr": [
        "Bu akşam sinemaya gitmek ister misin?",
        "Annem her sabah kahvaltıda taze ekmek ve peynir hazırlar.",
        "Yarın sabah erken kalkıp havaalanına gitmemiz gerekiyor.",
    ],
    "ar": [
        "هل يمكنك أن تخبرني أين تقع أقرب محطة للحافلات؟",
        "تذهب عائلتي كل يوم جمعة إلى الحديقة العامة لتناول الغداء.",
        "أحب قراءة الكتب التاريخية في المساء قبل النوم.",
    ],
    "zh": [
        "请问去火车站应该怎么走？",
        "我每天早上都会在公园里跑步半个小时。",
        "这家饭馆的饺子特别好吃，价格也很便宜。",
    ],
    "ja": [
        "駅までの道を教えていただけますか。",
        "昨日は友達と一緒に新しいレストランで晩ご飯を食べました。",
        "毎朝七時に起きて、犬と一緒に近くの公園を散歩します。",
    ],
    "ko": [
        "가장 가까운 지하철역이 어디에 있는지 알려 주시겠어요?",
        "저는 주말마다 친구들과 함께 산에 올라갑니다.",
        "어머니께서 만들어 주신 김치찌개가 정말 맛있었어요.",
    ],
    "hi": [
        "क्या आप मुझे बता सकते हैं कि सबसे नज़दीकी रेलवे स्टेशन कहाँ है?",
        "मेरी माँ हर रविवार को पूरे परिवार के लिए स्वादिष्ट खाना बनाती हैं।",
        "कल रात बहुत तेज़ बारिश हुई, इसलिए आज स्कूल बंद है।",
    ],
    "id": [
        "Apakah kamu tahu jam berapa toko buku itu tutup hari ini?",
        "Setiap pagi ayah saya minum kopi sambil membaca koran di teras rumah.",
        "Kami akan berlibur ke Bali bersama keluarga pada bulan depan.",
    ],
    "vi": [
        "Bạn có biết bến xe buýt gần nhất ở đâu không?",
        "Mỗi sáng mẹ tôi đều đi chợ mua rau và cá tươi.",
        "Cuối tuần này chúng tôi sẽ đi biển cùng với các bạn cùng lớp.",
    ],
}

# A paragraph each.
LONG = {
    "en": (
        "Every autumn the village holds a small market in the square in front of the church. "
        "Farmers from the surrounding hills bring cheese, honey, apples and freshly baked bread, "
        "and the children run between the stalls with paper lanterns. In the evening a brass "
        "band plays old songs, and the older people sit on wooden benches and talk about the "
        "harvest. Visitors often say that it feels as if time has stopped there, and many of "
        "them come back the following year."
    ),
    "de": (
        "Im Herbst verwandelt sich der kleine Ort am See in ein buntes Fest. Die Bauern aus der "
        "Umgebung verkaufen Käse, Honig und frisch gepresste Säfte, während Musiker auf dem "
        "Marktplatz alte Volkslieder spielen. Am Abend treffen sich die Nachbarn in der "
        "Gaststätte, essen Zwiebelkuchen und trinken neuen Wein. Viele Besucher kommen jedes "
        "Jahr wieder, weil sie die ruhige Stimmung und die Gastfreundschaft der Menschen "
        "schätzen."
    ),
    "fr": (
        "Chaque été, la petite ville organise un festival de musique sur la place principale. "
        "Des artistes venus de toute la région jouent jusqu'à minuit, et les habitants "
        "installent des tables dans les rues pour partager un repas avec leurs voisins. Les "
        "enfants dansent devant la scène pendant que les grands-parents écoutent les vieilles "
        "chansons qu'ils connaissent par cœur. Pour beaucoup de familles, c'est le moment le "
        "plus attendu de l'année."
    ),
    "es": (
        "Cada primavera, el pueblo celebra una feria en la plaza mayor. Los agricultores de la "
        "comarca venden aceite de oliva, queso y pan recién hecho, mientras los niños corren "
        "entre los puestos con globos de colores. Por la tarde, una banda toca canciones "
        "tradicionales y los vecinos bailan hasta que se pone el sol. Muchos visitantes dicen "
        "que es la mejor manera de conocer las costumbres de la región y vuelven todos los años."
    ),
    "it": (
        "Ogni estate il piccolo paese sulle colline organizza una sagra dedicata ai prodotti "
        "locali. Le famiglie preparano pasta fatta in casa, formaggi e dolci tradizionali, e i "
        "tavoli vengono sistemati lungo la strada principale. Dopo cena una piccola orchestra "
        "suona musica popolare e tutti, giovani e anziani, ballano nella piazza illuminata. "
        "Molti turisti tornano ogni anno perché apprezzano l'atmosfera semplice e accogliente "
        "del luogo."
    ),
    "pt": (
        "Todos os anos, no mês de junho, a cidade celebra as festas populares com música, dança "
        "e comida tradicional. As ruas enchem-se de bandeirinhas coloridas e os moradores montam "
        "barracas onde vendem sardinhas assadas, broa e vinho. As crianças brincam até tarde e "
        "os mais velhos recordam as festas da sua juventude. Para muitos, é a altura do ano em "
        "que a vizinhança se sente verdadeiramente como uma grande família."
    ),
    "nl": (
        "Elk voorjaar komen duizenden toeristen naar de bollenvelden om de bloeiende tulpen te "
        "bewonderen. De boeren werken van vroeg tot laat om de bloemen op tijd te oogsten en "
        "naar de veiling te brengen. In de dorpen worden kleine markten gehouden waar je kaas, "
        "stroopwafels en verse vis kunt kopen. Veel bezoekers huren een fiets, zodat ze rustig "
        "langs de kanalen en de oude windmolens kunnen rijden."
    ),
    "pl": (
        "Każdego lata w naszej wsi odbywa się festyn, na który przyjeżdżają goście z całej "
        "okolicy. Gospodynie przygotowują pierogi, bigos i domowe ciasta, a na scenie występują "
        "miejscowe zespoły ludowe. Dzieci bawią się na karuzeli, a starsi mieszkańcy siedzą przy "
        "stołach i wspominają dawne czasy. Wieczorem wszyscy tańczą na placu przed remizą "
        "strażacką aż do późnej nocy."
    ),
    "ru": (
        "Зимой наш маленький город становится особенно красивым. Улицы покрываются снегом, на "
        "главной площади ставят большую ёлку, а дети катаются с горки и лепят снеговиков. По "
        "вечерам в окнах горит тёплый свет, и семьи собираются за столом, чтобы выпить чаю с "
        "вареньем. Многие туристы приезжают сюда именно в это время года, чтобы покататься на "
        "лыжах и увидеть настоящую русскую зиму."
    ),
    "uk": (
        "Влітку наше село оживає: на полях дозріває пшениця, у садах достигають вишні та яблука. "
        "Діти цілими днями купаються в річці, а дорослі працюють на городі й готують варення на "
        "зиму. Увечері сусіди збираються біля хати, співають старовинних пісень і розповідають "
        "цікаві історії. Кожен, хто хоч раз побував тут, обов'язково хоче повернутися наступного "
        "року."
    ),
    "cs": (
        "Každé léto se v našem městečku koná tradiční pouť, na kterou přijíždějí lidé z celého "
        "okolí. Na náměstí stojí kolotoče a stánky s perníkem, trdelníkem a pečenými klobásami. "
        "Děti se vozí na houpačkách, zatímco dospělí posedávají v hospodě a povídají si s "
        "přáteli. Večer hraje na pódiu dechovka a mnoho lidí tančí až do noci."
    ),
    "sv": (
        "På midsommarafton samlas familjer och vänner över hela landet för att fira sommarens "
        "ljusaste dag. Man klär en stång med blommor och björkris, reser den på ängen och dansar "
        "runt den medan någon spelar fiol. Till middag äter man sill, färskpotatis och "
        "jordgubbar, och ofta sjunger man snapsvisor mellan rätterna. Många tycker att det är "
        "årets roligaste högtid, även om vädret inte alltid är så varmt som man hoppas."
    ),
    "da": (
        "Om sommeren tager mange danske familier i sommerhus ved kysten. Børnene bader i havet "
        "og bygger sandslotte, mens de voksne læser bøger i haven og griller pølser om aftenen. "
        "Når det bliver mørkt, sidder man udenfor med et tæppe og snakker, indtil det bliver for "
        "koldt. Mange siger, at de lange lyse aftener er det bedste ved den danske sommer, selv "
        "når det blæser."
    ),
    "fi": (
        "Suomessa kesä on lyhyt mutta valoisa, ja monet perheet viettävät sen mökillä järven "
        "rannalla. Päivät kuluvat uimisen, kalastamisen ja marjojen poimimisen parissa, ja "
        "illalla lämmitetään sauna. Saunan jälkeen hypätään järveen ja istutaan laiturilla "
        "katsomassa, kun aurinko laskee hitaasti puiden taakse. Syksyn tullen kaupunkiin "
        "palataan, mutta kesän muistot lämmittävät pitkän ja pimeän talven yli."
    ),
    "tr": (
        "Her yaz köyümüzde büyük bir şenlik düzenlenir ve çevredeki kasabalardan pek çok insan "
        "gelir. Kadınlar gözleme, börek ve baklava yapar, erkekler ise meydanda çay içip sohbet "
        "eder. Çocuklar akşama kadar oyun oynar, gece olunca da herkes davul zurna eşliğinde "
        "halay çeker. Bu şenlik, köyde yaşayanlar için yılın en güzel ve en kalabalık günüdür."
    ),
    "ar": (
        "في كل صيف تقيم مدينتنا مهرجانًا كبيرًا في الساحة الرئيسية. يأتي الناس من القرى المجاورة "
        "لبيع الفواكه والعسل والخبز الطازج، ويلعب الأطفال بين الأكشاك حتى غروب الشمس. وفي المساء "
        "تعزف فرقة موسيقية أغاني تراثية، ويجلس كبار السن في المقاهي يتحدثون عن الأيام الماضية. "
        "يقول كثير من الزوار إنهم يعودون كل عام لأنهم يحبون كرم أهل المدينة وجمال شوارعها "
        "القديمة."
    ),
    "zh": (
        "每年春节，我们全家人都会回到老家和爷爷奶奶一起过年。除夕那天，大家一起包饺子、贴春联，晚"
        "上围坐在桌子旁边吃团圆饭。孩子们收到红包以后非常高兴，在院子里放鞭炮和烟花。虽然路上很辛"
        "苦，但是能和家人团聚，每个人都觉得非常幸福。"
    ),
    "ja": (
        "毎年夏になると、私たちの町では大きな花火大会が開かれます。川沿いにはたくさんの屋台が並び"
        "、人々は浴衣を着て焼きそばやかき氷を楽しみます。夜になると、空いっぱいに色とりどりの花火"
        "が上がり、子どもたちは大きな声で喜びます。遠くから来る観光客も多く、町は一年で一番にぎや"
        "かな夜を迎えます。"
    ),
    "ko": (
        "매년 가을이 되면 우리 마을에서는 작은 축제가 열립니다. 농부들은 직접 기른 사과와 배, "
        "고구마를 시장에 내놓고, 아이들은 풍선을 들고 골목을 뛰어다닙니다. 저녁이 되면 광장에서 "
        "전통 음악 공연이 펼쳐지고, 어르신들은 막걸리를 마시며 옛날 이야기를 나눕니다. 많은 "
        "관광객들이 이 축제의 따뜻한 분위기를 좋아해서 해마다 다시 찾아옵니다."
    ),
    "hi": (
        "हर साल दिवाली के समय हमारा पूरा शहर रोशनी से जगमगा उठता है। लोग अपने घरों की सफ़ाई करते "
        "हैं, दरवाज़ों पर रंगोली बनाते हैं और शाम को दीये जलाते हैं। बच्चे नए कपड़े पहनकर पटाखे "
        "चलाते हैं और बड़े लोग एक-दूसरे को मिठाइयाँ बाँटते हैं। यह त्योहार परिवार और दोस्तों के "
        "साथ खुशियाँ मनाने का सबसे अच्छा अवसर माना जाता है।"
    ),
    "id": (
        "Setiap tahun menjelang hari raya, kampung kami menjadi sangat ramai. Orang-orang yang "
        "bekerja di kota pulang untuk berkumpul dengan keluarga mereka, dan para ibu sibuk "
        "memasak ketupat, rendang, dan kue-kue tradisional. Anak-anak bermain di halaman sambil "
        "menunggu waktu berbuka puasa. Setelah salat, semua orang saling berkunjung ke rumah "
        "tetangga untuk bersilaturahmi dan meminta maaf."
    ),
    "vi": (
        "Mỗi dịp Tết đến, cả gia đình tôi lại quây quần bên nhau ở quê nội. Mọi người cùng nhau "
        "gói bánh chưng, dọn dẹp nhà cửa và trang trí cây đào trước sân. Đêm giao thừa, chúng "
        "tôi ngồi bên bếp lửa, kể cho nhau nghe những câu chuyện của năm cũ. Sáng mùng một, trẻ "
        "con mặc quần áo mới và nhận lì xì từ ông bà, cha mẹ."
    ),
}

# Documents in one language with passages in another; the label is the main language.
MIXED = [
    (
        "de",
        (
            "Der Vortrag begann mit einem bekannten Zitat: „Stay hungry, stay foolish.“ Danach "
            "erklärte die Rednerin, wie sie ihr erstes Unternehmen in einer kleinen Garage "
            "gegründet hatte und warum sie dabei so viele Fehler gemacht hat. Sie sprach über "
            "Mut, Geduld und die Bedeutung guter Freunde in schwierigen Zeiten."
        ),
    ),
    (
        "en",
        (
            "To install the package, create a virtual environment and run the commands "
            "below.\n\n    python -m venv .venv\n    .venv/bin/pip install requests\n\nThen "
            "import the library in your script and call `requests.get(url, timeout=10)` to fetch "
            "a page. The function returns a response object whose `status_code` attribute tells "
            "you whether the request succeeded."
        ),
    ),
    (
        "fr",
        (
            "Notre équipe utilise un cluster Kubernetes pour déployer le pipeline de machine "
            "learning. Chaque nuit, un job lance l'entraînement du modèle sur les nouvelles "
            "données, puis les résultats sont envoyés dans un dashboard que les data scientists "
            "consultent le matin. Si le build échoue, un message est envoyé automatiquement sur "
            "le canal Slack de l'équipe."
        ),
    ),
    (
        "es",
        (
            "La reunión terminó más tarde de lo previsto porque todos querían opinar sobre el "
            "nuevo proyecto. Al final, la directora resumió las decisiones y pidió que cada "
            'equipo enviara su informe antes del viernes. Alguien escribió en la pizarra: "Thank '
            'you all, see you next week." Después, fuimos a tomar un café a la cafetería de la '
            "esquina."
        ),
    ),
    (
        "ja",
        (
            "新しいMacBook Proを買ったので、PythonとVisual Studio "
            "Codeをインストールしました。最初はGitHubの使い方がよく分かりませんでしたが、友達に教"
            "えてもらって、自分のプロジェクトを公開できるようになりました。"
        ),
    ),
    (
        "zh",
        (
            "我们的团队最近开始使用Docker和Kubernetes来部署服务。虽然一开始遇到了很多问题，但是经"
            "过几个星期的学习，大家都已经能够独立完成发布工作了。下一步我们打算把所有的日志都放到"
            "Elasticsearch里面。"
        ),
    ),
    (
        "ru",
        (
            "Вчера я установил новую версию Linux на свой старый ноутбук. Всё работает быстро, "
            "но драйвер для Wi-Fi пришлось скачать отдельно. Теперь я использую этот компьютер "
            "для программирования на Python и для просмотра фильмов по вечерам."
        ),
    ),
    (
        "hi",
        (
            "मैंने कल अपने laptop पर नया software install किया, लेकिन वह ठीक से काम नहीं कर रहा "
            "है। मेरे दोस्त ने कहा कि मुझे पहले computer को restart करना चाहिए और फिर से कोशिश "
            "करनी चाहिए। आज शाम को मैं यह फिर से करके देखूँगा।"
        ),
    ),
    (
        "en",
        (
            "When we arrived in Berlin, the taxi driver greeted us with a smile and said: "
            '"Herzlich willkommen in Berlin!" He then drove us through the city, pointing out '
            "the old buildings, the parks and the river, and told us where to find the best "
            "coffee and the cheapest books in town. We spent the whole week walking and never "
            "once felt lost."
        ),
    ),
    (
        "nl",
        (
            'Tijdens de conferentie gaf de spreker een presentatie over "deep learning" en de '
            "toekomst van kunstmatige intelligentie. Hij liet zien hoe bedrijven in Nederland "
            "deze technieken gebruiken om betere beslissingen te nemen, en hij beantwoordde na "
            "afloop nog veel vragen van het publiek."
        ),
    ),
    (
        "ko",
        (
            "어제 회사에서 새로운 project를 시작했어요. 팀장님이 meeting에서 일정과 목표를 "
            "설명해 주셨고, 우리는 다음 주까지 첫 번째 보고서를 준비해야 합니다."
        ),
    ),
    (
        "pl",
        (
            "W naszej firmie wszyscy programiści używają Gita i pracują w systemie code review. "
            "Każda zmiana musi zostać sprawdzona przez co najmniej dwie osoby, zanim trafi do "
            "głównej gałęzi projektu."
        ),
    ),
    (
        "ar",
        (
            "اشتريت أمس هاتفًا جديدًا من نوع Samsung Galaxy بسعر 900 دولار، وقمت بتثبيت تطبيقات "
            "WhatsApp وInstagram عليه. البطارية تدوم طويلًا والكاميرا ممتازة في الإضاءة المنخفضة."
        ),
    ),
    (
        "it",
        (
            "Alla fine della cena il nonno alzò il bicchiere e disse in inglese, come faceva "
            'sempre con gli ospiti stranieri: "Cheers, my friends!" Poi raccontò per l\'ennesima '
            "volta la storia del suo viaggio in America, quando aveva vent'anni e non conosceva "
            "nessuno."
        ),
    ),
    (
        "en",
        (
            "The configuration file accepts the following keys: `timeout` (seconds, default 30), "
            "`retries` (default 3) and `endpoint`. Values set in the environment override the "
            "file.\n\n    [server]\n    endpoint = https://example.org/api\n    timeout = 10\n\n"
            "If a key is missing, the default is used and a warning is written to the log."
        ),
    ),
    (
        "sv",
        (
            "I går kväll såg vi en gammal amerikansk film på tv. Huvudpersonen sa hela tiden "
            '"I\'ll be back", och min lillebror tyckte att det var jätteroligt. Efter filmen '
            "diskuterade vi länge vilka skådespelare som var bäst och vilken film vi skulle se "
            "nästa helg."
        ),
    ),
]
SAMPLES: list[tuple[str, str, str]] = (
    [(lang, "phrase", t) for lang, ts in PHRASES.items() for t in ts]
    + [(lang, "short", t) for lang, ts in SHORT.items() for t in ts]
    + [(lang, "long", t) for lang, t in LONG.items()]
    + [(lang, "mixed", t) for lang, t in MIXED]
)
TEXTS = [text for _, _, text in SAMPLES]


def accuracy(identifier: LanguageIdentifier) -> float:
    codes, _ = identifier.identify(TEXTS)
    return sum(code == lang for code, (lang, _, _) in zip(codes, SAMPLES, strict=True)) / len(
        SAMPLES
    )


@pytest.fixture(scope="module")
def default() -> LanguageIdentifier:
    stage = LanguageIdentifier()
    stage.setup()
    return stage


def test_the_set_covers_twenty_two_languages_in_every_kind():
    assert {lang for lang, _, _ in SAMPLES} == set(DEFAULT_LANGUAGES)
    assert {kind for _, kind, _ in SAMPLES} == {"phrase", "short", "long", "mixed"}
    assert len(set(TEXTS)) == len(TEXTS)


def test_default_backend_is_py3langid(default):
    assert DEFAULT_BACKEND == "py3langid" and default.backend == "py3langid"


def test_default_is_at_least_as_accurate_as_lingua_high_accuracy_mode(default):
    lingua_high = LanguageIdentifier(backend="lingua", low_accuracy=False)
    ours, theirs = accuracy(default), accuracy(lingua_high)
    assert ours >= theirs, f"default {ours:.3f} < lingua high accuracy {theirs:.3f}"


def test_default_is_at_least_as_accurate_as_lingua_low_accuracy_mode(default):
    lingua_low = LanguageIdentifier(backend="lingua", low_accuracy=True)
    ours, theirs = accuracy(default), accuracy(lingua_low)
    assert ours >= theirs, f"default {ours:.3f} < lingua low accuracy {theirs:.3f}"


@pytest.mark.parametrize("kind", ["phrase", "short", "long", "mixed"])
def test_default_identifies_every_kind_of_text(default, kind):
    rows = [(lang, text) for lang, k, text in SAMPLES if k == kind]
    codes, scores = default.identify([text for _, text in rows])
    wrong = [
        (lang, code, text[:40])
        for code, (lang, text) in zip(codes, rows, strict=True)
        if code != lang
    ]
    assert len(wrong) <= len(rows) // 20, wrong
    assert all(0.0 < s <= 1.0 for s in scores)


def test_default_gives_the_same_answer_whatever_the_batch_and_order(default):
    codes, scores = default.identify(TEXTS)
    one_by_one = [default.identify([t]) for t in TEXTS]
    assert [c[0] for c, _ in one_by_one] == codes
    assert [float(s[0]) for _, s in one_by_one] == scores.tolist()
    back_codes, back_scores = LanguageIdentifier().identify(TEXTS[::-1])
    assert back_codes[::-1] == codes and back_scores[::-1].tolist() == scores.tolist()


def test_default_gives_the_same_answer_in_another_process(default):
    codes, scores = default.identify(TEXTS)
    script = (
        "import json, sys\n"
        "from stages.text.language import LanguageIdentifier\n"
        "codes, scores = LanguageIdentifier().identify(json.load(sys.stdin))\n"
        "print(json.dumps([codes, scores.tolist()]))\n"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(TEXTS), capture_output=True,
        text=True, env=env, cwd=root, check=True, timeout=300,
    )  # fmt: skip
    assert json.loads(out.stdout) == [codes, scores.tolist()]
