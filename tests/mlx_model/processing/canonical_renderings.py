"""What Google's canonical Gemma 4 chat template (sha256 ae53464b...) renders for each
conversation in `chat_shapes.CONVERSATIONS` (bos_token "<bos>"), pinned."""

EXPECTED: dict[str, str] = {
    "system_as_text": (
        "<bos><|turn>system\n"
        "You are terse.<turn|>\n"
        "<|turn>user\n"
        "Hello<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "system_as_parts": (
        "<bos><|turn>system\n"
        "Be brief. Answer in French. <turn|>\n"
        "<|turn>user\n"
        "Hello<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "developer_role_as_system": (
        "<bos><|turn>system\n"
        "Use metric units.<turn|>\n"
        "<|turn>user\n"
        "How far is it?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "thinking_off": ("<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"),
    "thinking_on": (
        "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"
    ),
    "no_generation_prompt": ("<bos><|turn>user\nHi<turn|>\n<|turn>model\nHello!<turn|>\n"),
    "history_with_reasoning_thinking_off": (
        "<bos><|turn>user\n"
        "2+2?<turn|>\n"
        "<|turn>model\n"
        "4<turn|>\n"
        "<|turn>user\n"
        "And 3+3?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "history_with_reasoning_thinking_on": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        "Think first.<turn|>\n"
        "<|turn>user\n"
        "2+2?<turn|>\n"
        "<|turn>model\n"
        "4<turn|>\n"
        "<|turn>user\n"
        "And 3+3?<turn|>\n"
        "<|turn>model\n"
    ),
    "reasoning_after_the_last_user_message": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        "<turn|>\n"
        "<|turn>user\n"
        "2+2?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "add them\n"
        "<channel|>4<turn|>\n"
    ),
    "thought_markup_in_model_content_is_stripped": (
        "<bos><|turn>user\n"
        "2+2?<turn|>\n"
        "<|turn>model\n"
        "The answer is 4.<turn|>\n"
        "<|turn>user\n"
        "Thanks<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "consecutive_model_messages_continue_one_turn": (
        "<bos><|turn>user\n"
        "Tell me two things.<turn|>\n"
        "<|turn>model\n"
        "First.Second.<turn|>\n"
        "<|turn>user\n"
        "Thanks<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "tools_declared_with_a_system_prompt": (
        "<bos><|turn>system\n"
        'Be brief.<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "Weather?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "tools_declared_with_thinking_on": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "Weather?<turn|>\n"
        "<|turn>model\n"
    ),
    "openai_tool_messages_thinking_off": (
        "<bos><|turn>system\n"
        'You are a helpful assistant.<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "I need the weather tool and the calculator.\n"
        '<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,units:<|"|>celsius<|"|>}<tool_call|><|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>response:get_weather{value:<|"|>{"temperature": 21, "sky": "sunny"}<|"|>}<tool_response|><|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|>'
    ),
    "openai_tool_messages_thinking_on": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        'You are a helpful assistant.<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "I need the weather tool and the calculator.\n"
        '<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,units:<|"|>celsius<|"|>}<tool_call|><|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>response:get_weather{value:<|"|>{"temperature": 21, "sky": "sunny"}<|"|>}<tool_response|><|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|><|channel>thought\n'
    ),
    "inline_tool_responses": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>response:get_weather{sky:<|"|>sunny<|"|>,temperature:21}<tool_response|>'
    ),
    "inline_tool_responses_thinking_on": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "Check the weather.\n"
        '<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>response:get_weather{value:<|"|>21 C and sunny<|"|>}<tool_response|><|channel>thought\n'
    ),
    "tool_result_then_user_turn": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|><turn|>\n'
        "<|turn>user\n"
        "Now divide it by 2.<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "tool_result_then_final_answer": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|>6*7 is 42.<turn|>\n'
        "<|turn>user\n"
        "Thanks<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "answer_text_and_tool_calls_in_one_message": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|>Let me check.<turn|>\n'
    ),
    "tool_call_waiting_for_its_result": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:calculator{expression:<|"|>6*7<|"|>}<tool_call|><|tool_response>'
    ),
    "none_in_tool_arguments_and_results": (
        "<bos><|turn>system\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:null,fields:[<|"|>wind<|"|>,null],ok:true}<tool_call|><|tool_call>call:calculator{}<tool_call|><|tool_response>response:get_weather{rain:null,temp:21.5}<tool_response|><|tool_response>response:calculator{value:null}<tool_response|>'
    ),
    "tool_result_as_content_parts_with_an_image": (
        "<bos><|turn>user\n"
        "Take a screenshot and describe it.<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:screenshot{}<tool_call|><|tool_response>response:screenshot{value:<|"|>captured screen.png<|"|>}<tool_response|><|image|>'
    ),
    "tool_result_without_a_matching_call_id": (
        "<bos><|turn>user\n"
        "Go<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:calculator{x:1}<tool_call|><|tool_response>response:lookup{value:<|"|>done<|"|>}<tool_response|>'
    ),
    "media_in_user_content": (
        "<bos><|turn>user\n"
        "<|image|><|image|><|video|>Describe all of it.<|audio|><|audio|><turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "<channel|>"
    ),
    "preserve_thinking_off": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,units:<|"|>celsius<|"|>}<tool_call|><|tool_response>response:get_weather{value:<|"|>{"temperature": 21, "sky": "sunny"}<|"|>}<tool_response|>It is sunny.<turn|>\n'
        "<|turn>user\n"
        "And tomorrow?<turn|>\n"
        "<|turn>model\n"
    ),
    "preserve_thinking_on": (
        "<bos><|turn>system\n"
        "<|think|>\n"
        '<|tool>declaration:get_weather{description:<|"|>Current weather for a city.<|"|>,parameters:{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>},days:{description:<|"|>Forecast days<|"|>,nullable:true,type:<|"|>INTEGER<|"|>},fields:{description:<|"|>What to report<|"|>,items:{type:<|"|>STRING<|"|>},type:<|"|>ARRAY<|"|>},location:{properties:{lat:{type:<|"|>NUMBER<|"|>},lon:{type:<|"|>NUMBER<|"|>}},required:[<|"|>lat<|"|>,<|"|>lon<|"|>],type:<|"|>OBJECT<|"|>},units:{enum:[<|"|>celsius<|"|>,<|"|>fahrenheit<|"|>],type:<|"|>STRING<|"|>}},required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><|tool>declaration:calculator{description:<|"|>Evaluate an arithmetic expression.<|"|>,parameters:{properties:{expression:{type:<|"|>STRING<|"|>}},required:[<|"|>expression<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\n"
        "What is the weather in Paris? And what is 6*7?<turn|>\n"
        "<|turn>model\n"
        "<|channel>thought\n"
        "I need the weather tool and the calculator.\n"
        '<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,units:<|"|>celsius<|"|>}<tool_call|><|tool_response>response:get_weather{value:<|"|>{"temperature": 21, "sky": "sunny"}<|"|>}<tool_response|>It is sunny.<turn|>\n'
        "<|turn>user\n"
        "And tomorrow?<turn|>\n"
        "<|turn>model\n"
    ),
}
